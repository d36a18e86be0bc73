#include "model/wan/vae_loader.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pytorch_file.h"

namespace wanbatch::model::wan {

WanVae load_vae(const std::string& path, const core::Context& ctx) {
  const std::string extension = std::filesystem::path(path).extension().string();
  std::map<std::string, core::Tensor> weights;
  if (extension == ".pth" || extension == ".pt") {
    weights = io::read_pytorch_state_dict(path);
  } else {
    const io::Checkpoint checkpoint = io::Checkpoint::open(path);
    for (const std::string& name : checkpoint.names())
      weights.emplace(name, checkpoint.tensor(name));
  }
  try {
    return WanVae(weights, ctx);
  } catch (const Error& e) {
    throw make_error(path, ": ", e.what());
  }
}

}  // namespace wanbatch::model::wan
