#include "io/pickle_reader.h"

#include <cstring>
#include <iomanip>
#include <sstream>
#include <unordered_map>

#include "core/error.h"

namespace wanbatch::io::pickle {

ValuePtr Value::make(Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

ValuePtr Value::make_string(std::string text) {
  auto v = make(Kind::kString);
  v->text = std::move(text);
  return v;
}

ValuePtr Value::make_global(std::string module, std::string name) {
  auto v = make(Kind::kGlobal);
  v->text = std::move(module);
  v->name = std::move(name);
  return v;
}

ValuePtr Value::make_object(std::any object) {
  auto v = make(Kind::kObject);
  v->object = std::move(object);
  return v;
}

ValuePtr Value::find(const std::string& key) const {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first->is(Kind::kString) && it->first->text == key) return it->second;
  }
  return nullptr;
}

std::string describe(const Value& value) {
  using Kind = Value::Kind;
  std::ostringstream out;
  switch (value.kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return value.boolean ? "bool True" : "bool False";
    case Kind::kInt:
      out << "int " << value.integer;
      break;
    case Kind::kFloat:
      out << "float " << value.real;
      break;
    case Kind::kString:
      out << "str '" << (value.text.size() > 40 ? value.text.substr(0, 40) + "..." : value.text)
          << "'";
      break;
    case Kind::kBytes:
      out << "bytes of length " << value.text.size();
      break;
    case Kind::kTuple:
      out << "tuple of " << value.items.size();
      break;
    case Kind::kList:
      out << "list of " << value.items.size();
      break;
    case Kind::kDict:
      out << "dict of " << value.entries.size();
      break;
    case Kind::kGlobal:
      out << "global " << value.text << "." << value.name;
      break;
    case Kind::kObject:
      return "object";
  }
  return out.str();
}

namespace {

using Kind = Value::Kind;

// Opcodes of the other protocols, named in the message when met (pickletools' names).
const char* foreign_opcode_name(unsigned char op) {
  switch (op) {
    case 'I':
      return "INT (protocol 0)";
    case 'L':
      return "LONG (protocol 0)";
    case 'S':
      return "STRING (protocol 0)";
    case 'V':
      return "UNICODE (protocol 0)";
    case 'F':
      return "FLOAT (protocol 0)";
    case 'p':
      return "PUT (protocol 0)";
    case 'g':
      return "GET (protocol 0)";
    case 'd':
      return "DICT (protocol 0)";
    case 'l':
      return "LIST (protocol 0)";
    case 'i':
      return "INST (protocol 0)";
    case 'o':
      return "OBJ (protocol 1)";
    case 'P':
      return "PERSID (protocol 0)";
    case 'T':
      return "BINSTRING (Python 2 str)";
    case 'U':
      return "SHORT_BINSTRING (Python 2 str)";
    case 0x82:
    case 0x83:
    case 0x84:
      return "EXT1/EXT2/EXT4 (extension registry)";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    case 0x92:
      return "NEWOBJ_EX";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    default:
      return nullptr;
  }
}

class Machine {
 public:
  Machine(const char* data, size_t size, Handler& handler, const std::string& where)
      : begin_(reinterpret_cast<const unsigned char*>(data)),
        p_(begin_),
        end_(begin_ + size),
        handler_(handler),
        where_(where) {}

  ValuePtr run();

 private:
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw make_error(where_, ": ", args..., " at byte ", op_at_);
  }

  const unsigned char* take(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_))
      fail("pickle is truncated: it ends inside the opcode");
    const unsigned char* at = p_;
    p_ += n;
    return at;
  }
  uint64_t read_le(int bytes) {
    const unsigned char* at = take(bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | at[i];
    return v;
  }
  std::string read_text(uint64_t n) {
    const unsigned char* at = take(n);
    return std::string(reinterpret_cast<const char*>(at), n);
  }
  std::string read_line() {
    const unsigned char* nl = static_cast<const unsigned char*>(std::memchr(p_, '\n', end_ - p_));
    if (!nl) fail("pickle is truncated: it ends inside the GLOBAL");
    std::string line(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return line;
  }
  // A little-endian two's complement integer of n bytes (LONG1/LONG4).
  int64_t read_long(uint64_t n) {
    if (n > 8) fail("pickle integer of ", n, " bytes does not fit in 64 bits");
    if (n == 0) return 0;
    const unsigned char* at = take(n);
    uint64_t v = 0;
    for (int i = static_cast<int>(n) - 1; i >= 0; --i) v = (v << 8) | at[i];
    if (n < 8 && (at[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }

  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr pop() {
    if (stack_.size() <= floor()) fail("pickle stack underflow (malformed pickle)");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.size() <= floor()) fail("pickle stack underflow (malformed pickle)");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // The objects pushed since the last MARK, which is removed.
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail("pickle uses a MARK it never set (malformed pickle)");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(std::make_move_iterator(stack_.begin() + mark),
                                std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return items;
  }
  ValuePtr make_int(int64_t v) {
    auto value = Value::make(Kind::kInt);
    value->integer = v;
    return value;
  }
  ValuePtr make_tuple(std::vector<ValuePtr> items) {
    auto value = Value::make(Kind::kTuple);
    value->items = std::move(items);
    return value;
  }
  void memo_put(uint64_t index) { memo_[index] = top(); }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("pickle reads memo entry ", index, " that was never stored");
    push(it->second);
  }
  void set_items(Value& dict, std::vector<ValuePtr>& items) {
    if (!dict.is(Kind::kDict)) fail("pickle sets items on a ", describe(dict), ", not a dict");
    if (items.size() % 2) fail("pickle SETITEMS with an odd number of objects");
    // A repeated key (which Python's pickler never writes) is kept twice; Value::find and the
    // readers of a dict take the last one, as a Python dict would.
    for (size_t i = 0; i < items.size(); i += 2) dict.entries.emplace_back(items[i], items[i + 1]);
  }
  void append_items(Value& list, std::vector<ValuePtr>& items) {
    if (!list.is(Kind::kList)) fail("pickle appends to a ", describe(list), ", not a list");
    for (auto& item : items) list.items.push_back(std::move(item));
  }

  const unsigned char* begin_;
  const unsigned char* p_;
  const unsigned char* end_;
  Handler& handler_;
  const std::string& where_;
  size_t op_at_ = 0;  // offset of the opcode being run, for messages
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
};

ValuePtr Machine::run() {
  while (p_ < end_) {
    op_at_ = static_cast<size_t>(p_ - begin_);
    const unsigned char op = *p_++;
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t proto = read_le(1);
        if (proto < 2 || proto > 5) fail("pickle protocol ", proto, " is not supported");
        break;
      }
      case 0x95:
        read_le(8);
        break;     // FRAME: a length prefix only; the stream is contiguous
      case '.': {  // STOP
        ValuePtr result = pop();
        return result;
      }
      case '}':
        push(Value::make(Kind::kDict));
        break;  // EMPTY_DICT
      case ']':
        push(Value::make(Kind::kList));
        break;  // EMPTY_LIST
      case ')':
        push(make_tuple({}));
        break;  // EMPTY_TUPLE
      case '(':
        marks_.push_back(stack_.size());
        break;  // MARK
      case 't':
        push(make_tuple(pop_mark()));
        break;  // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
        std::vector<ValuePtr> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case 'X':
        push(Value::make_string(read_text(read_le(4))));
        break;  // BINUNICODE
      case 0x8c:
        push(Value::make_string(read_text(read_le(1))));
        break;  // SHORT_BINUNICODE
      case 0x8d:
        push(Value::make_string(read_text(read_le(8))));
        break;  // BINUNICODE8
      case 'B':
      case 'C':
      case 0x8e: {  // BINBYTES, SHORT_BINBYTES, BINBYTES8
        auto v = Value::make(Kind::kBytes);
        v->text = read_text(read_le(op == 'B' ? 4 : op == 'C' ? 1 : 8));
        push(std::move(v));
        break;
      }
      case 'J':
        push(make_int(static_cast<int32_t>(read_le(4))));
        break;  // BININT
      case 'K':
        push(make_int(static_cast<int64_t>(read_le(1))));
        break;  // BININT1
      case 'M':
        push(make_int(static_cast<int64_t>(read_le(2))));
        break;  // BININT2
      case 0x8a:
        push(make_int(read_long(read_le(1))));
        break;  // LONG1
      case 0x8b:
        push(make_int(read_long(read_le(4))));
        break;     // LONG4
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const unsigned char* at = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | at[i];
        auto v = Value::make(Kind::kFloat);
        std::memcpy(&v->real, &bits, sizeof bits);
        push(std::move(v));
        break;
      }
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        auto v = Value::make(Kind::kBool);
        v->boolean = op == 0x88;
        push(std::move(v));
        break;
      }
      case 'N':
        push(Value::make(Kind::kNone));
        break;  // NONE
      case 'q':
        memo_put(read_le(1));
        break;  // BINPUT
      case 'r':
        memo_put(read_le(4));
        break;  // LONG_BINPUT
      case 0x94:
        memo_put(memo_.size());
        break;  // MEMOIZE
      case 'h':
        memo_get(read_le(1));
        break;  // BINGET
      case 'j':
        memo_get(read_le(4));
        break;  // LONG_BINGET
      case '0':
        pop();
        break;  // POP
      case '1':
        pop_mark();
        break;  // POP_MARK
      case '2':
        push(top());
        break;     // DUP
      case 'c': {  // GLOBAL
        std::string module = read_line();
        std::string name = read_line();
        push(handler_.global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        ValuePtr name = pop();
        ValuePtr module = pop();
        if (!module->is(Kind::kString) || !name->is(Kind::kString)) {
          fail("pickle STACK_GLOBAL of ", describe(*module), " and ", describe(*name));
        }
        push(handler_.global(module->text, name->text));
        break;
      }
      case 'R':
      case 0x81: {  // REDUCE, NEWOBJ
        ValuePtr args = pop();
        ValuePtr callable = pop();
        if (!args->is(Kind::kTuple)) fail("pickle calls with a ", describe(*args), ", not a tuple");
        push(handler_.call(callable, args));
        break;
      }
      case 'b': {  // BUILD
        ValuePtr state = pop();
        handler_.build(top(), state);
        break;
      }
      case 's': {  // SETITEM
        ValuePtr value = pop();
        ValuePtr key = pop();
        std::vector<ValuePtr> items{std::move(key), std::move(value)};
        set_items(*top(), items);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<ValuePtr> items = pop_mark();
        set_items(*top(), items);
        break;
      }
      case 'a': {  // APPEND
        std::vector<ValuePtr> items{pop()};
        append_items(*top(), items);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<ValuePtr> items = pop_mark();
        append_items(*top(), items);
        break;
      }
      case 'Q': {  // BINPERSID
        ValuePtr pid = pop();
        push(handler_.persistent_load(pid));
        break;
      }
      default: {
        if (const char* name = foreign_opcode_name(op)) {
          fail("unsupported pickle opcode '", name, "'");
        }
        std::ostringstream hex;
        hex << "0x" << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(op);
        fail("unknown pickle opcode ", hex.str());
      }
    }
  }
  op_at_ = static_cast<size_t>(p_ - begin_);
  fail("pickle is truncated: it ends without a STOP opcode");
}

}  // namespace

ValuePtr unpickle(const char* data, size_t size, Handler& handler, const std::string& where) {
  Machine machine(data, size, handler, where);
  return machine.run();
}

}  // namespace wanbatch::io::pickle
