#!/usr/bin/env bash
# The GPU-machine checks of one device session, run in parallel in one call (see BENCHMARKS.md for the results):
#   A. scripts/gpu_check.py: every model, 32-true / bf16-mixed / 16-mixed, images/s and finite losses;
#   B. BigBiGAN-lite and BiGAN on Fashion-MNIST 32x32 (FID, reconstruction grids), then scripts/probe_benchmark.py;
#   C. scripts/semisup_benchmark.py at a longer budget (100 and 1,000 labels, 3 seeds, GAN vs baseline).
# Fashion-MNIST comes from $GAN_ZOO_DATA (the Debian package's four .gz files, carried to the machine).
# Usage: OUT=<dir> bash scripts/gpu_session.sh [seconds per job]
set -u
LIMIT=${1:-360}
R=${OUT:-/tmp/out}/results
mkdir -p "$R"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, lightning, torchmetrics; print(torch.__version__, lightning.__version__, torchmetrics.__version__)") > "$R/env.txt" 2>&1
fitgpu() { OMP_NUM_THREADS=2 timeout "$LIMIT" python3 scripts/fit.py --accelerator ${ACC:-gpu} --logger csv --no-progress-bar "$@"; }
( OMP_NUM_THREADS=2 timeout "$LIMIT" python3 scripts/gpu_check.py --accelerator ${ACC:-gpu} --precisions 32-true,bf16-mixed,16-mixed ${CHECK_ARGS:---steps 150 --warmup 50} \
    --json "$R/gpu_check.json" > "$R/gpu_check.log" 2>&1 ) &
for m in bigbigan bigan; do
  ( fitgpu --model $m --resolution 32 --max-images ${BIGAN_IMAGES:-300000} --metrics fid --metric-samples 10000 \
      --out "$R/$m" > "$R/$m.log" 2>&1
    OMP_NUM_THREADS=4 timeout 180 python3 scripts/probe_benchmark.py --ckpt "$R/$m/checkpoints/last.ckpt" \
      --json "$R/probe_$m.json" >> "$R/$m.log" 2>&1 ) &
done
( timeout "$LIMIT" python3 scripts/semisup_benchmark.py --data fashion_mnist --labels ${LABELS:-100,1000} --seeds ${SEEDS:-0,1,2} \
    --max-images ${SEMISUP_IMAGES:-300000} --jobs 12 --extra "--accelerator ${ACC:-gpu}" --out "$R/semisup" \
    --json "$R/semisup.json" > "$R/semisup.log" 2>&1 ) &
wait
rm -f "$R"/*/checkpoints/*.ckpt "$R"/semisup/*/checkpoints/*.ckpt 2>/dev/null
find "$R" -name "*.ckpt" -size +5M -delete
cd "${OUT:-/tmp/out}" && tar czf results.tgz results && ls -la results.tgz
