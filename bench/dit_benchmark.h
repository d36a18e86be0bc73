// The DiT forward benchmark behind `wanbatch bench` (issue 8): a model of a released variant's
// real size with random bf16 weights, one forward at a video size, timed as the median of several
// runs after warm-up; its FLOPs and TFLOP/s; a breakdown from one profiled run (GEMM, attention,
// communication, other); peak device memory; and the ceilings measured in the same run at the
// same shapes (a bf16 GEMM and the attention of the whole sequence). With `guided` the timed unit
// is one guided evaluation as the sampler makes it (model/sampling/guidance.h): the prompt and the
// negative prompt as one batch of two, or on the two ranks of a CFG-parallel pair.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/context.h"
#include "parallel/comm.h"

namespace wanbatch::bench {

struct DitBenchOptions {
  std::string variant;  // a preset name (model/wan/config.h)
  int64_t width = 832, height = 480, frames = 81;
  int iterations = 5, warmup = 2;
  uint64_t seed = 0;
  int64_t text_tokens = 128;    // the prompt's real tokens (the model pads to text_len)
  bool shard_weights = false;   // blocks split over the sp ranks, gathered before each block
  bool offload_blocks = false;  // blocks in pinned host memory, copied in a block ahead
  // Load the model through the checkpoint loader from this folder (random weights written there
  // first when it holds none), timing the load from a warm page cache; empty: random weights
  // made in memory.
  std::string weights_dir;
  // Time a guided evaluation (two forwards) instead of one forward; cfg_parallel: on 2 × ulysses
  // ranks, the prompt on one half and the negative prompt on the other (implies guided).
  bool guided = false;
  bool cfg_parallel = false;
};

struct DitBenchResult {
  int64_t tokens = 0;  // the whole sequence
  int sp = 1;
  int cfg = 1;       // 2: CFG-parallel
  double flops = 0;  // the timed unit (one forward, or two when guided), all ranks together
  // The timed unit's median, fastest and slowest; guided: a guided evaluation's (as guided_ms).
  double forward_ms = 0, min_ms = 0, max_ms = 0;
  double enqueue_ms = 0;  // the host's time to queue the timed unit (median)
  double tflops_per_gpu = 0;
  double weights_gib = 0, peak_gib = 0;
  double resident_block_gib = 0;   // this rank's block parameters on the device (shards, buffers)
  double offloaded_block_gib = 0;  // this rank's block parameters in pinned host memory
  double load_seconds = 0;         // with weights_dir: the slowest rank's second load (warm cache)
  // gemm, attention (of which cross_attention), communication, other; and every op's own time,
  // from one profiled run of the timed unit.
  std::map<std::string, double> breakdown_ms;
  std::map<std::string, double> op_ms;
  // The ceilings in a short burst (timed run by run), and sustained: back to back for as long as
  // a forward runs, the load under which the forward's own ops run.
  double gemm_ceiling_tflops = 0, attention_ceiling_tflops = 0;
  double gemm_sustained_tflops = 0, attention_sustained_tflops = 0;
};

// Collective over `sp` when given (Ulysses over its ranks; every rank passes the same options)
// and over `cfg` (the CFG-parallel pair of options.cfg_parallel; null or one rank otherwise).
DitBenchResult run_dit_benchmark(const core::Context& ctx, const DitBenchOptions& options,
                                 parallel::Comm* sp, parallel::Comm* cfg = nullptr);

// The whole benchmark as a command runs it: MPI start-up, the sp and cfg groups as `wanbatch run`
// makes them (NCCL on GPUs), this rank's GPU (its node-local rank modulo the devices; the CPU
// with `cpu`), then rank 0 prints the summary and the key=value line. Returns the exit status.
int run_dit_benchmark_command(const DitBenchOptions& options, int ulysses, bool cpu);

// The machine-readable last line: "bench variant=... size=WxH frames=F gpus=N sp=N forward_ms=...
// tflops=... peak_gib=..." and the rest of the figures; guided, then also "cfg=0|1 guided_ms=...
// tflop=..." (the TFLOP of the two forwards).
std::string result_line(const DitBenchOptions& options, const DitBenchResult& result, int gpus);

}  // namespace wanbatch::bench
