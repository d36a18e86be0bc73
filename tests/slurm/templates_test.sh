#!/usr/bin/env bash
# The SLURM templates (slurm/*.sbatch): each parses (bash -n) and, run as sbatch would run it with
# fake srun / mpirun / wanbatch on the PATH, launches `wanbatch run` with the job's settings, after
# a --dry-run where the template has one. A real SLURM cluster test comes later.
set -euo pipefail
src=${1:?usage: templates_test.sh SOURCE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
# Each fake command appends its name and arguments, one line per call, to calls.log.
for tool in srun mpirun wanbatch; do
  cat > "$work/bin/$tool" <<FAKE
#!/usr/bin/env bash
echo "$tool \$*" >> "$work/calls.log"
FAKE
  chmod +x "$work/bin/$tool"
done
export PATH="$work/bin:$PATH" JOB_CONFIG=job.ini MANIFEST=m.jsonl OUTPUT_DIR=out
export SLURM_NTASKS=16 SLURM_NTASKS_PER_NODE=8 SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_COUNT=8

fail() { echo "FAIL: $*"; cat "$work/calls.log" 2>/dev/null; exit 1; }
expect_line() {  # template, pattern: some call must match
  grep -Eq -- "$2" "$work/calls.log" || fail "$1: no call matching '$2'"
}

for template in "$src"/slurm/*.sbatch; do
  name=$(basename "$template")
  bash -n "$template" || fail "$name does not parse"
  rm -f "$work/calls.log"
  bash "$template" || fail "$name exited with $?"
  case "$name" in
    single_node.sbatch | multi_node.sbatch)
      expect_line "$name" '^wanbatch run --config job.ini --manifest m.jsonl --output-dir out --dry-run$'
      expect_line "$name" '^srun --mpi=pmix wanbatch run --config job.ini --manifest m.jsonl --output-dir out$' ;;
    multi_node_mpirun.sbatch)
      expect_line "$name" '^wanbatch run .* --dry-run$'
      expect_line "$name" '^mpirun -np 16 --map-by ppr:8:node --bind-to none wanbatch run --config job.ini --manifest m.jsonl --output-dir out$' ;;
    job_array.sbatch)
      expect_line "$name" '^srun --mpi=pmix wanbatch run --config job.ini --manifest m.jsonl --output-dir out$' ;;
    *) fail "no expectations for $name" ;;
  esac
  echo "ok: $name"
done

# A missing variable stops a template with a message naming it, before anything runs.
rm -f "$work/calls.log"
if (unset MANIFEST; bash "$src/slurm/single_node.sbatch") 2> "$work/err"; then
  fail "single_node.sbatch ran without MANIFEST"
fi
grep -q "MANIFEST" "$work/err" || fail "the error does not name MANIFEST: $(cat "$work/err")"
[[ ! -f "$work/calls.log" ]] || fail "something ran without MANIFEST"
echo "ok: a missing variable is named"
