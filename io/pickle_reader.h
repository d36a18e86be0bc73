// A small pickle machine for the part of Python's pickle format that torch.save writes for state
// dicts (protocol 2, PyTorch's default; the protocol 3-5 opcodes it may meet are read too). It
// builds plain values (None, bool, int, float, str, bytes, tuple, list, dict) itself and hands
// every global, call (REDUCE, NEWOBJ), BUILD and persistent id to a Handler, so nothing is ever
// imported or executed. Anything outside the subset (protocol 0/1 text opcodes, sets, extension
// codes, out-of-band buffers) is an Error naming the opcode and its byte offset.
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wanbatch::io::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

// One unpickled object. Containers hold pointers, so a memoized object shared between places (or
// mutated by SETITEMS after being memoized) is the same Value everywhere, as in Python.
struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kObject
  };

  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;          // kInt (pickle integers beyond 64 bits are rejected)
  double real = 0;              // kFloat
  std::string text;             // kString (UTF-8), kBytes; kGlobal: the module
  std::string name;             // kGlobal: the name inside the module
  std::vector<ValuePtr> items;  // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in insertion order
  std::any object;                                     // kObject: whatever the handler made

  static ValuePtr make(Kind kind);
  static ValuePtr make_string(std::string text);
  static ValuePtr make_global(std::string module, std::string name);
  static ValuePtr make_object(std::any object);

  bool is(Kind k) const { return kind == k; }
  // The dict entry whose key is the string `key`, or null.
  ValuePtr find(const std::string& key) const;
};

// What a value is, for messages: "int 3", "str 'cpu'", "tuple of 6", "global torch.FloatStorage".
std::string describe(const Value& value);

// Gives meaning to the objects the pickle machine does not build itself. Each method either returns
// the result or throws an Error (whose message should name the file).
class Handler {
 public:
  virtual ~Handler() = default;
  // GLOBAL / STACK_GLOBAL module.name.
  virtual ValuePtr global(const std::string& module, const std::string& name) = 0;
  // REDUCE callable(*args) and NEWOBJ cls.__new__(cls, *args); `args` is a tuple.
  virtual ValuePtr call(const ValuePtr& callable, const ValuePtr& args) = 0;
  // BUILD: object.__setstate__(state); the object stays on the stack.
  virtual void build(const ValuePtr& object, const ValuePtr& state) = 0;
  // BINPERSID: the object a persistent id stands for.
  virtual ValuePtr persistent_load(const ValuePtr& pid) = 0;
};

// Runs the pickle in [data, data + size) up to its STOP and returns the object it made. `where`
// names the pickle in messages ("model.pth: archive/data.pkl").
ValuePtr unpickle(const char* data, size_t size, Handler& handler, const std::string& where);

}  // namespace wanbatch::io::pickle
