#!/usr/bin/env bash
# Issue 9's measurements on the GPU machine (device tool), after bench/gpu_session.sh has built
# build-gpu: forward time with the blocks' weights resident, sharded (gathers prefetched a block
# ahead) and offloaded to pinned host memory, and the load time of a checkpoint by rank count.
# Usage, from the repository root there:  bash bench/gpu_weights_bench.sh SECTION...
#   sp2      A14B expert 720p on 2 GPUs: sharded, sharded + offloaded (unsharded for reference)
#   offload  A14B expert 720p on 1 GPU: resident and --offload-blocks
#   small    1.3B 480p on 1 GPU: resident and --offload-blocks
#   load     load time of a written A14B expert (random bf16) on 1 and 2 ranks, sharded
# Lines starting "bench " are the machine-readable results.
set -uo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
bench=build-gpu/bin/wanbatch-bench
a14b=(--variant wan2.2-t2v-a14b --size 1280x720 --frames 81 --warmup 1 --iterations 2)
run() { echo "+ $*"; "$@" 2>&1 | grep -E "^bench |error|loaded "; }
for section in "$@"; do
  case $section in
    sp2)
      run mpirun -np 2 $bench "${a14b[@]}" --ulysses 2
      run mpirun -np 2 $bench "${a14b[@]}" --ulysses 2 --shard-weights
      run mpirun -np 2 $bench "${a14b[@]}" --ulysses 2 --shard-weights --offload-blocks ;;
    offload)
      run $bench "${a14b[@]}"
      run $bench "${a14b[@]}" --offload-blocks ;;
    small)
      run $bench --variant wan2.1-t2v-1.3b --size 832x480 --frames 81 --warmup 1 --iterations 3
      run $bench --variant wan2.1-t2v-1.3b --size 832x480 --frames 81 --warmup 1 --iterations 3 \
        --offload-blocks ;;
    load)
      dir=${WEIGHTS_DIR:-/tmp/a14b-expert}
      small=(--variant wan2.2-t2v-a14b --size 256x256 --frames 1 --warmup 0 --iterations 1)
      run $bench "${small[@]}" --weights-dir "$dir"
      run mpirun -np 2 $bench "${small[@]}" --weights-dir "$dir" --ulysses 2 --shard-weights ;;
    *) echo "unknown section $section" >&2 ;;
  esac
done
