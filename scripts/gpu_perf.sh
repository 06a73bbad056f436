#!/usr/bin/env bash
# The performance tables of BENCHMARKS.md on a GPU machine, for one device call. The sections run one after another,
# so each comparison has the GPU to itself, in order of importance, each under its own time limit; benchmark.py
# rewrites its JSON after every model, so a section stopped at its limit keeps the models it finished.
#   0. the CUDA-only test of benchmark.py (in-process CUDA peak memory);
#   1. every model and the canonical DCGAN, Lightning path vs plain loop, bf16-mixed, channels-last (the default);
#   2. channels-last vs contiguous on the Lightning path, bf16-mixed;
#   3. the Lightning-vs-plain table in fp32 (TF32 matmuls off: torch's default).
# Usage: OUT=<dir> bash scripts/gpu_perf.sh      (everything also in <dir>/perf.tgz)
#   Dry run on the CPU: ACC=cpu MEM=none STEPS=1 WARMUP=1 REPEATS=1 MODELS=dcgan,egan OUT=/tmp/p bash scripts/gpu_perf.sh
set -u
R=${OUT:-/tmp/out}/perf
mkdir -p "$R"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
ACC=${ACC:-gpu}
MEM=${MEM:-cuda}
SEL=""
[ -n "${MODELS:-}" ] && SEL="--models $MODELS --configs ${CONFIGS:-none}"
ARGS="--accelerator $ACC --steps ${STEPS:-25} --warmup ${WARMUP:-10} $SEL"
(date -u; nproc; grep -m1 "model name" /proc/cpuinfo; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
 python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__)") > "$R/env.txt" 2>&1
bench() {
  name=$1; limit=$2; shift 2
  timeout "$limit" python3 scripts/benchmark.py $ARGS "$@" --json "$R/$name.json" > "$R/$name.txt" 2> "$R/$name.err"
  echo "$(date -u +%T) $name: exit $?" >> "$R/status.txt"
  (cd "$R/.." && tar czf perf.tgz perf)  # one file back (a device call returns at most 8), after every section
}
if [ "$ACC" = gpu ]; then
  timeout 45 python3 -m pytest -q -p no:cacheprovider tests/test_benchmark.py -k cuda_memory > "$R/pytest_cuda.txt" 2>&1
  echo "$(date -u +%T) pytest_cuda: exit $?" >> "$R/status.txt"
fi
bench paths_bf16 "${LIMIT1:-250}" --repeats "${REPEATS:-5}" --channels-last --precision bf16-mixed --memory "$MEM"
bench formats_bf16 "${LIMIT2:-130}" --repeats "${REPEATS:-3}" --compare formats --precision bf16-mixed --memory none
bench paths_fp32 "${LIMIT3:-150}" --repeats "${REPEATS:-3}" --channels-last --precision 32-true --memory "$MEM"
date -u >> "$R/env.txt"
cat "$R/status.txt" "$R"/*.txt
