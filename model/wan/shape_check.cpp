#include "model/wan/shape_check.h"

#include <vector>

#include "core/error.h"

namespace wanbatch::model::wan {

void check_tensor_shapes(const std::string& what,
                         const std::map<std::string, core::Shape>& expected,
                         const std::map<std::string, core::Shape>& actual,
                         const std::map<std::string, core::Shape>& optional) {
  std::vector<std::string> missing, unexpected, misshapen;
  auto check = [&](const std::string& name, const core::Shape& got, const core::Shape& want) {
    if (got != want) {
      misshapen.push_back(name + " " + core::shape_str(got) + " (expected " +
                          core::shape_str(want) + ")");
    }
  };
  for (const auto& [name, shape] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      missing.push_back(name);
    } else {
      check(name, it->second, shape);
    }
  }
  for (const auto& [name, shape] : actual) {
    if (expected.count(name)) continue;
    auto it = optional.find(name);
    if (it == optional.end()) {
      unexpected.push_back(name);
    } else {
      check(name, shape, it->second);
    }
  }
  if (missing.empty() && unexpected.empty() && misshapen.empty()) return;
  auto list = [](const char* kind, const std::vector<std::string>& names) {
    if (names.empty()) return std::string();
    std::string s = std::string(kind) + " (" + std::to_string(names.size()) + "): ";
    for (size_t i = 0; i < names.size() && i < 12; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > 12) s += ", ...";
    return s + "; ";
  };
  std::string message = what + ": " + list("missing", missing) + list("unexpected", unexpected) +
                        list("misshapen", misshapen);
  message.resize(message.size() - 2);
  throw Error(message);
}

}  // namespace wanbatch::model::wan
