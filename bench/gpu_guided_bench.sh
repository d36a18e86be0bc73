#!/usr/bin/env bash
# Issue 8's guided-evaluation measurements on 2 GPUs (device tool), after bench/gpu_session.sh has
# built build-gpu: one guided evaluation (the prompt and the negative prompt) as one batch of two
# on 1 GPU, CFG-parallel on 2 (one pass each, one all-gather), and Ulysses 2 with the batch of two.
# Usage, from the repository root there:  bash bench/gpu_guided_bench.sh SECTION...
#   small    1.3B 832x480x81
#   a14b     A14B expert 1280x720x81 (--warmup 1 --iterations 2)
#   forward  one plain forward of each on 1 GPU, for reference (guided_ms against 2 × forward_ms)
# Lines starting "bench " are the machine-readable results (cfg=1: CFG-parallel).
set -uo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
bench=build-gpu/bin/wanbatch-bench
small=(--variant wan2.1-t2v-1.3b --size 832x480 --frames 81 --warmup 1 --iterations 3)
a14b=(--variant wan2.2-t2v-a14b --size 1280x720 --frames 81 --warmup 1 --iterations 2)
run() { echo "+ $*"; "$@" 2>&1 | grep -E "^bench |error|guided evaluation"; }
guided() {
  run $bench "$@" --guided
  run mpirun -np 2 $bench "$@" --cfg-parallel
  run mpirun -np 2 $bench "$@" --guided --ulysses 2
}
for section in "$@"; do
  case $section in
    small) guided "${small[@]}" ;;
    a14b) guided "${a14b[@]}" ;;
    forward)
      run $bench "${small[@]}"
      run $bench "${a14b[@]}" ;;
    *) echo "unknown section $section" >&2 ;;
  esac
done
