#include "core/context.h"

namespace wanbatch::core {

Context Context::cpu() { return Context(); }

}  // namespace wanbatch::core
