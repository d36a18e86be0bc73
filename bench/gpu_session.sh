#!/usr/bin/env bash
# One call on the GPU machine (device tool): configure, build, run every CUDA test (each binary
# directly, so the benchmark lines they print are kept), with logs under $OUT. Usage, from the
# repository root there:  bash bench/gpu_session.sh [extra ctest -R regex]
set -uo pipefail
OUT=${OUT:-/tmp/wanbatch-gpu}
LOGS="$OUT/logs"  # packed into $OUT/logs.tgz at the end (the device tool returns few files)
mkdir -p "$LOGS"
trap 'tar czf "$OUT/logs.tgz" -C "$LOGS" . && rm -rf "$LOGS"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DWANBATCH_CUDA=ON
  cmake --build build-gpu -j"$(nproc)" -- -k 0
} > "$LOGS/build.log" 2>&1
status=$?
tail -5 "$LOGS/build.log"
grep -E "error|warning:" "$LOGS/build.log" | head -40
[ $status -eq 0 ] || exit $status
for t in build-gpu/tests/test_cuda_*; do
  name=$(basename "$t")
  timeout 300 "$t" > "$LOGS/$name.log" 2>&1
  echo "$name: exit $? ($(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$LOGS/$name.log" | tr '\n' ' '))"
  grep -A8 -E "Failure|exception" "$LOGS/$name.log" | head -40
done
ctest --test-dir build-gpu -R "nccl|dit_ulysses|dit_sharded|sampler_parallel${1:+|$1}" --output-on-failure > "$LOGS/ctest.log" 2>&1
tail -15 "$LOGS/ctest.log"
