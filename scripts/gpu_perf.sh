#!/usr/bin/env bash
# The performance tables of BENCHMARKS.md on a GPU machine, for one device call (run one after another, so each
# comparison has the GPU to itself):
#   1. every model and the canonical DCGAN, Lightning path vs plain loop, bf16-mixed, channels-last (the default);
#   2. the same in fp32 (TF32 matmuls off: torch's default);
#   3. channels-last vs contiguous on the Lightning path, bf16-mixed.
# Usage: OUT=<dir> bash scripts/gpu_perf.sh      (ACC=cpu and small STEPS / REPEATS for a dry run on the CPU)
set -u
R=${OUT:-/tmp/out}/perf
mkdir -p "$R"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
ACC=${ACC:-gpu}
ARGS="--accelerator $ACC --steps ${STEPS:-40} --warmup ${WARMUP:-10} --repeats ${REPEATS:-6}"
LIMIT=${LIMIT:-170}
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__)") > "$R/env.txt" 2>&1
bench() { name=$1; shift; timeout "$LIMIT" python3 scripts/benchmark.py $ARGS "$@" --json "$R/$name.json" > "$R/$name.txt" 2> "$R/$name.err"; echo "$name: exit $?" >> "$R/status.txt"; }
bench paths_bf16 --channels-last --precision bf16-mixed
bench paths_fp32 --channels-last --precision 32-true --memory none
bench formats_bf16 --compare formats --precision bf16-mixed --memory none
cat "$R"/*.txt
