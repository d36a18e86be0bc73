// The wanbatch subcommands. Each takes its invocation and returns the process exit status;
// errors are thrown as wanbatch::Error and reported by main.
#pragma once

#include "app/cli.h"

namespace wanbatch::app {

int inspect_command(const Invocation& call);
int make_test_model_command(const Invocation& call);
int run_command(const Invocation& call);
int tool_command(const Invocation& call);
int tool_dit_command(const Invocation& call);
int tool_encode_text_command(const Invocation& call);
int tool_sample_command(const Invocation& call);
int tool_vae_decode_command(const Invocation& call);
int tool_vae_encode_command(const Invocation& call);
int decode_command(const Invocation& call);
int bench_command(const Invocation& call);

}  // namespace wanbatch::app
