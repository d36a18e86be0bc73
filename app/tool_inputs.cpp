#include "app/tool_inputs.h"

#include "core/error.h"

namespace wanbatch::app {

core::Tensor read_input(const io::Hdf5Reader& in, const std::string& name, int rank) {
  core::Tensor t = in.read(name);
  if (t.ndim() == rank + 1 && t.dim(0) == 1) {
    t = t.reshape(core::Shape(t.shape().begin() + 1, t.shape().end()));
  }
  WB_CHECK(t.ndim() == rank, "dataset '", name, "' in ", in.path(), " has shape ",
           core::shape_str(t.shape()), "; expected ", rank, " dimensions");
  return t.dtype() == core::DType::F32 ? t : t.to(core::DType::F32);
}

std::vector<model::wan::LoraFile> lora_option(const po::variables_map& vm, const std::string& key) {
  std::vector<model::wan::LoraFile> loras;
  if (!vm.count(key)) return loras;
  for (const std::string& arg : vm[key].as<std::vector<std::string>>()) {
    loras.push_back(model::wan::parse_lora_argument(arg));
  }
  return loras;
}

std::string describe_loras(const std::vector<model::wan::LoraFile>& loras) {
  std::string text;
  for (const auto& lora : loras) {
    text += (text.empty() ? "" : ", ") + lora.path + ":" + std::to_string(lora.strength);
  }
  return text;
}

}  // namespace wanbatch::app
