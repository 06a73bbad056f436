#!/usr/bin/env bash
# One device call for the 2D toys: SGAN on grid25 with 4 and with 8 local pairs (5 seeds each, 12,000 iterations,
# one GPU process per run, all at once), beside a short CUDA check of every model (scripts/gpu_check.py, finite
# losses and samples in fp32 and bf16-mixed; its speeds are measured under that load and are not quoted).
# With MPS (when the machine has it and a CUDA client works under it) the small processes share the GPU instead of
# time-slicing it. Runs still going at the limit are stopped; their fit.log keeps the evaluation every 2,000
# iterations. Everything comes back in $OUT/results.tgz (no checkpoints). Sizing, measured on an H200 under MPS with
# all ten runs at once: about 22 iterations/s per 4-pair run and 12 per 8-pair run, little more than one core of the
# development VM gives (about 16 and 7: these MLPs are bound by per-step overhead), so 12,000 iterations need about
# 10 and 17 minutes, more than one call allows; the 2026-11-27 call stopped at 8,000 and 4,000 (BENCHMARKS.md).
#   OUT=<dir> GAN_ZOO_DATA=<Fashion-MNIST IDX files> bash scripts/gpu_toys.sh [seconds for the toy runs]
# Env: ITER (12000), SEEDS (0,1,2,3,4), PAIRS (4 8), ACC (gpu), CHECK_ARGS (gpu_check.py options), MPS (1; 0 = off).
set -u
LIMIT=${1:-480}
ITER=${ITER:-12000}
R=${OUT:-/tmp/out}/results
mkdir -p "$R"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
(date -u; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
 python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__)") > "$R/env.txt" 2>&1
if [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control > /dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d && timeout 60 python3 -c "import torch; assert torch.ones(2, device='cuda').sum().item() == 2"; then
    echo "MPS: on" >> "$R/env.txt"
  else
    echo quit | nvidia-cuda-mps-control
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "MPS: off (it did not start or a client failed under it)" >> "$R/env.txt"
  fi
else
  echo "MPS: not used" >> "$R/env.txt"
fi
( OMP_NUM_THREADS=1 timeout 240 python3 scripts/gpu_check.py --accelerator ${ACC:-gpu} --precisions 32-true,bf16-mixed \
    ${CHECK_ARGS:---steps 20 --warmup 10 --window 10} --json "$R/gpu_check.json" > "$R/gpu_check.log" 2>&1 ) &
for P in ${PAIRS:-4 8}; do
  ( timeout "$LIMIT" python3 scripts/toy_benchmark.py --models sgan --toys grid25 --seeds ${SEEDS:-0,1,2,3,4} \
      --iterations "$ITER" --n-pairs "$P" --jobs 5 --out "$R/toys_p$P" --jsonl "$R/toys.jsonl" \
      --extra "--accelerator ${ACC:-gpu} --metrics-every-images $((2000 * 256 * P)) --ckpt-every-images 100000000" \
      > "$R/toys_p$P.log" 2>&1 ) &
done
wait
pkill -f "$R/toys_p"  # the fits still going (their --out is under $R)
sleep 2
[ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] && echo quit | nvidia-cuda-mps-control
date -u >> "$R/env.txt"
find "$R" -name "*.ckpt" -delete
cd "$R/.." && tar czf results.tgz results && ls -la results.tgz
