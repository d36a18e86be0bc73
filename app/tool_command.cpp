// wanbatch tool: single-stage commands that read and write HDF5 (DESIGN.md "Command line"), for
// checking each stage against other implementations. `wanbatch tool NAME --help` lists a
// tool's options.
#include <iostream>
#include <map>

#include "app/commands.h"
#include "core/error.h"

namespace wanbatch::app {
namespace {

struct ToolEntry {
  const char* summary;
  int (*run)(const Invocation&);
};

const std::map<std::string, ToolEntry>& tools() {
  static const std::map<std::string, ToolEntry> table = {
      {"dit",
       {"one DiT forward: latent, timestep, context (and y, clip) -> velocity", tool_dit_command}},
      {"encode-text", {"the umt5 text encoder: prompt -> ids, context", tool_encode_text_command}},
      {"sample",
       {"the sampling loop: noise, context, context_null -> latents", tool_sample_command}},
      {"vae-decode", {"a Wan VAE decode: latents -> frames", tool_vae_decode_command}},
      {"vae-encode", {"a Wan VAE encode: video -> latents", tool_vae_encode_command}},
  };
  return table;
}

void print_tools() {
  std::cout << "Usage: wanbatch tool NAME [options]    (wanbatch tool NAME --help for its "
               "options)\n\nTools:\n";
  for (const auto& [name, entry] : tools()) {
    std::cout << "  " << name << std::string(12 - std::min<size_t>(name.size(), 11), ' ')
              << entry.summary << "\n";
  }
}

}  // namespace

int tool_command(const Invocation& call) {
  if (call.args.empty() || call.args[0].rfind("-", 0) == 0) {
    print_tools();
    const bool asked = !call.args.empty() && (call.args[0] == "--help" || call.args[0] == "-h");
    return asked ? 0 : 2;
  }
  const auto it = tools().find(call.args[0]);
  if (it == tools().end()) {
    throw make_error("unknown tool '", call.args[0], "' (see wanbatch tool --help)");
  }
  Invocation sub;
  sub.command = "tool " + call.args[0];
  sub.args.assign(call.args.begin() + 1, call.args.end());
  return it->second.run(sub);
}

}  // namespace wanbatch::app
