// Checking a checkpoint's tensors against the ones a model expects, all at once: one error that
// lists every missing, unexpected and misshapen tensor, so a user fixes a wrong file in one go.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace wanbatch::model::wan {

// Throws Error "<what>: missing (N): a, b, ...; unexpected (N): ...; misshapen (N): name [shape]
// (expected [shape])" (at most 12 names per list) unless `actual` holds exactly the `expected`
// tensors with their shapes; tensors of `optional` may also be there, with their shapes.
void check_tensor_shapes(const std::string& what,
                         const std::map<std::string, core::Shape>& expected,
                         const std::map<std::string, core::Shape>& actual,
                         const std::map<std::string, core::Shape>& optional = {});

}  // namespace wanbatch::model::wan
