#include "io/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <iterator>

#include "core/error.h"

namespace wanbatch::io {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// The code point starting at text[i] and its byte count; an invalid sequence is one byte with
// code point 0xFFFFFFFF (kept as it is by the callers).
std::pair<char32_t, size_t> decode_utf8(std::string_view text, size_t i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  constexpr char32_t kInvalid = 0xFFFFFFFF;
  if (b0 < 0x80) return {b0, 1};
  size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 0;
  if (n == 0 || b0 >= 0xF8 || i + n > text.size()) return {kInvalid, 1};
  char32_t c = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return {kInvalid, 1};
    c = (c << 6) | (b & 0x3F);
  }
  return {c, n};
}

// Unicode White_Space: what `\s` of the `regex` module matches in whitespace_clean.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}
// Python's str.isspace (what str.strip removes): White_Space plus the separators 0x1C–0x1F.
bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

std::u32string_view trim(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_python_space(s[b])) ++b;
  while (e > b && is_python_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::u32string to_u32(std::string_view text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    auto [c, n] = decode_utf8(text, i);
    // An invalid byte is carried through as a lone code unit above the Unicode range, 0x110000 +
    // byte, and restored unchanged by to_utf8.
    out += c == 0xFFFFFFFF ? char32_t(0x110000 + static_cast<unsigned char>(text[i])) : c;
    i += n;
  }
  return out;
}

std::string to_utf8(std::u32string_view text) {
  std::string out;
  for (char32_t c : text) {
    if (c >= 0x110000) {
      out += static_cast<char>(c - 0x110000);
    } else {
      append_utf8(out, c);
    }
  }
  return out;
}

// Python's html._invalid_charrefs for 0x80–0x9F: the cp1252 characters (0 where cp1252 has none
// and Python keeps the code point).
constexpr std::array<char32_t, 32> kCp1252 = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// Python's html._invalid_codepoints: references to these are dropped.
bool is_invalid_codepoint(uint64_t c) {
  return (c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) ||
         (c >= 0x7F && c <= 0x9F) || (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
}

void append_numeric_reference(std::string& out, uint64_t num) {
  if (num == 0) return append_utf8(out, kReplacement);
  if (num == 0x0D) return append_utf8(out, U'\r');
  if (num >= 0x80 && num <= 0x9F) return append_utf8(out, kCp1252[num - 0x80]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return append_utf8(out, kReplacement);
  if (is_invalid_codepoint(num)) return;
  append_utf8(out, static_cast<char32_t>(num));
}

struct NamedReference {
  std::string_view name;  // with its ';' when the entry has one
  std::string_view value;
};
// Every HTML5 named reference, as html.unescape knows them.
constexpr NamedReference kNamed[] = {
#include "io/html5_entities.inc"
};

const NamedReference* find_named(std::string_view name) {
  const auto* end = std::end(kNamed);
  const auto* it =
      std::lower_bound(std::begin(kNamed), end, name,
                       [](const NamedReference& r, std::string_view n) { return r.name < n; });
  return it != end && it->name == name ? it : nullptr;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

// Follows Python's html.unescape: the pattern &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f
// <&#;]{1,32};?) and _replace_charref.
std::string html_unescape(std::string_view text) {
  if (text.find('&') == std::string_view::npos) return std::string(text);
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    const size_t start = i + 1;
    if (start < text.size() && text[start] == '#') {
      const bool hex =
          start + 1 < text.size() && (text[start + 1] == 'x' || text[start + 1] == 'X');
      size_t d = start + (hex ? 2 : 1), e = d;
      while (e < text.size() && (hex ? is_hex(text[e]) : is_digit(text[e]))) ++e;
      if (e == d) {  // no digits: not a reference
        out += text[i++];
        continue;
      }
      uint64_t num = 0;
      for (size_t k = d; k < e; ++k) {
        const char c = text[k];
        const uint64_t v = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + v, 0x110000);  // saturate past Unicode
      }
      append_numeric_reference(out, num);
      i = e < text.size() && text[e] == ';' ? e + 1 : e;
      continue;
    }
    // A named reference: up to 32 characters of [^\t\n\f <&#;], then an optional ';'.
    size_t e = start;
    auto name_char = [](char c) {
      return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
             c != ';';
    };
    while (e < text.size() && e - start < 32 && name_char(text[e])) ++e;
    if (e == start) {
      out += text[i++];
      continue;
    }
    if (e < text.size() && text[e] == ';') ++e;
    const std::string_view name = text.substr(start, e - start);
    if (const NamedReference* r = find_named(name)) {
      out += r->value;
    } else {
      // The longest prefix (of at least two characters) that is a reference, as Python does.
      bool found = false;
      for (size_t x = name.size() - 1; x > 1 && !found; --x) {
        if (const NamedReference* r = find_named(name.substr(0, x))) {
          out += r->value;
          out += name.substr(x);
          found = true;
        }
      }
      if (!found) {
        out += '&';
        out += name;
      }
    }
    i = e;
  }
  return out;
}

std::string wan_clean_text(std::string_view text) {
  // ftfy.fix_text's uncurl_quotes (the rest of ftfy is not reproduced, see the header).
  std::u32string s = to_u32(text);
  for (char32_t& c : s) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    if (c >= 0x201C && c <= 0x201F) c = U'"';
  }
  // basic_clean: html.unescape twice, strip.
  const std::string unescaped = html_unescape(html_unescape(to_utf8(s)));
  const std::u32string u = to_u32(unescaped);
  const std::u32string_view stripped = trim(u);
  // whitespace_clean: every run of whitespace to one space, strip.
  std::u32string collapsed;
  for (size_t k = 0; k < stripped.size();) {
    if (is_white_space(stripped[k])) {
      while (k < stripped.size() && is_white_space(stripped[k])) ++k;
      collapsed += U' ';
    } else {
      collapsed += stripped[k++];
    }
  }
  return to_utf8(trim(collapsed));
}

struct T5Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

T5Tokenizer::T5Tokenizer(const std::string& model_path)
    : path_(model_path), impl_(std::make_unique<Impl>()) {
  const auto status = impl_->processor.Load(model_path);
  WB_CHECK(status.ok(), model_path, ": not a SentencePiece model (", status.ToString(), ")");
  WB_CHECK(impl_->processor.eos_id() >= 0, model_path,
           ": the SentencePiece model defines no end-of-sequence id (</s>)");
  WB_CHECK(impl_->processor.pad_id() >= 0, model_path,
           ": the SentencePiece model defines no padding id (<pad>)");
}

T5Tokenizer::~T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;

int64_t T5Tokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }
int64_t T5Tokenizer::eos_id() const { return impl_->processor.eos_id(); }
int64_t T5Tokenizer::pad_id() const { return impl_->processor.pad_id(); }

std::vector<int64_t> T5Tokenizer::encode_ids(const std::string& cleaned) const {
  std::vector<int> ids;
  const auto status = impl_->processor.Encode(cleaned, &ids);
  WB_CHECK(status.ok(), path_, ": cannot encode '", cleaned, "' (", status.ToString(), ")");
  return std::vector<int64_t>(ids.begin(), ids.end());
}

T5Tokens T5Tokenizer::tokenize(std::string_view text, int64_t text_len) const {
  WB_CHECK(text_len >= 1, "text_len must be at least 1, got ", text_len);
  T5Tokens tokens;
  tokens.cleaned = wan_clean_text(text);
  std::vector<int64_t> pieces = encode_ids(tokens.cleaned);
  // HF: truncation to max_length − (number of special tokens), then </s>.
  if (static_cast<int64_t>(pieces.size()) > text_len - 1) pieces.resize(text_len - 1);
  tokens.ids = std::move(pieces);
  tokens.ids.push_back(eos_id());
  tokens.length = static_cast<int64_t>(tokens.ids.size());
  tokens.ids.resize(text_len, pad_id());
  return tokens;
}

}  // namespace wanbatch::io
