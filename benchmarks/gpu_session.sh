#!/usr/bin/env bash
# What a device session with a GPU runs, as one prepared call (results in BENCHMARKS.md and docs/lab/). Parts:
#   zoo      the pretrained zoo trained on the GPU, first and alone: every recipe in configs/zoo/ (or ZOO=a,b) at
#            once, one process each, to ZOO_IMAGES (600000) images with the EMA generator's metrics (--metrics auto:
#            FID / IS / KID of 10,000 samples, and the entry's own measure) every ZOO_EVERY (50000) images, each under
#            ZOO_LIMIT seconds (at the limit SIGTERM: the fit writes last.ckpt at the images it reached). PGGAN trains
#            at the widths a 32x32 network needs, not the CPU recipe's (ZOO_ARGS_pggan). Then every run is exported and
#            measured (scripts/export_pretrained.py --out: weights-only file, metrics, grid, manifest), the exports
#            coming back as $OUT/zoo.tgz.00, .01, ... (parts of 15 MiB: `cat zoo.tgz.* | tar xz -C DIR`, then
#            `python scripts/export_pretrained.py --import DIR`) and the curves (each run's logs/metrics.csv) in
#            results.tgz; beside the fits, the yardstick (benchmarks/yardstick.py: the plain PyTorch DCGAN at the same
#            protocol; ZOO_YARDSTICK=0 leaves it out), and at the end every curve in one figure and table
#            (benchmarks/zoo_curves.py: zoo_fid.png, zoo_table.md);
#   perf     the throughput tables, one section after another with the GPU to itself, each under its own limit
#            (benchmark.py rewrites its JSON after every model, so a section stopped at its limit keeps the models
#            it finished): 0. the CUDA-only test of benchmark.py (in-process CUDA peak memory); 1. every model and
#            the canonical DCGAN, Lightning path vs plain loop, bf16-mixed, channels-last (the default); 2. channels-
#            last vs contiguous on the Lightning path, bf16-mixed; 3. the Lightning-vs-plain table in fp32 (TF32
#            matmuls off: torch's default);
#   syncs    gpu_syncs.py: host synchronisations per training step, bf16-mixed;
#   check    benchmark.py --check: every model in 32-true / bf16-mixed / 16-mixed on Fashion-MNIST 32x32, finite
#            losses and samples, images/s (quotable only when check runs alone: the parts below load the GPU);
#   bigan    BigBiGAN-lite and BiGAN on Fashion-MNIST 32x32 (FID, reconstruction grids), then probe_benchmark.py;
#   semisup  semisup_benchmark.py, the default (DCGAN-style) networks: 100 and 1,000 labels, 5 label draws, GAN vs
#            baseline, the accuracy every 50k images, 12 at a time; records in semisup.jsonl;
#   toys     SGAN on grid25 with 4 and with 8 local pairs (5 seeds each, 12,000 iterations, one GPU process
#            per run, all at once; under MPS when the machine has it and a CUDA client works under it, so the small
#            processes share the GPU instead of time-slicing it). Measured on an H200 under MPS with all ten runs at
#            once: about 22 iterations/s per 4-pair run and 12 per 8-pair run, so 12,000 iterations need about 10 and
#            17 minutes; runs still going at the limit are stopped, their fit.log keeps the evaluation every 2,000.
# zoo, perf and syncs run first, alone, one after another; then check, bigan, semisup and toys run at the same time, each
# job under SECONDS. Fashion-MNIST comes from $GAN_ZOO_DATA (the Debian package's four .gz files, carried to the
# machine) or the Debian package. Everything comes back in $OUT/results.tgz (no checkpoints), rewritten after every
# perf section (a device call returns few files).
#
# Usage: OUT=<dir> [GAN_ZOO_DATA=<dir>] bash benchmarks/gpu_session.sh [PARTS [SECONDS]]
#   PARTS: comma list of the parts above (default: perf,check), SECONDS: the limit of each job after perf (360).
# Env: ACC (gpu); zoo: ZOO, ZOO_IMAGES, ZOO_EVERY, ZOO_LIMIT (390 s), ZOO_ARGS_<model> (more fit.py options for that
#   model's entries; pggan: "--fmap-base 8192 --fmap-max 256 --batch-size 64 --phase-images 60000
#   --phase-images-per-res 32:60000"), ZOO_EXPORT_N (10000 samples), ZOO_YARDSTICK (1), YARDSTICK_ARGS;
#   perf: MEM (cuda), STEPS (25), WARMUP (10), REPEATS (5 for the first table, 3 for the others), MODELS and CONFIGS (default: every model and canonical64), LIMIT1/2/3 (250/130/150 s per table);
#   check: CHECK_PRECISIONS (32-true,bf16-mixed,16-mixed), CHECK_ARGS (--steps 150 --warmup 50);
#   bigan: BIGAN_IMAGES (300000); semisup: LABELS (100,1000), SEMISUP_SEEDS (0,1,2,3,4), SEMISUP_IMAGES (300000);
#   toys: ITER (12000), TOY_SEEDS (0,1,2,3,4), PAIRS (4 8), MPS (1; 0 = off).
# Dry run of zoo on the CPU (minutes): ACC=cpu ZOO=dcgan.fmnist32,semisupgan.fmnist28 ZOO_IMAGES=256 ZOO_EVERY=128 \
#   ZOO_ARGS_dcgan="--metric-samples 200" ZOO_ARGS_semisupgan="--metric-samples 200" YARDSTICK_ARGS="--metric-samples 200" \
#   ZOO_EXPORT_N=200 OUT=/tmp/g bash benchmarks/gpu_session.sh zoo
# Dry run on the CPU (seconds): ACC=cpu MEM=none STEPS=1 WARMUP=1 REPEATS=1 MODELS=dcgan CONFIGS=none \
#   CHECK_PRECISIONS=32-true CHECK_ARGS="--models dcgan --steps 2 --warmup 1 --window 1" BIGAN_IMAGES=128 \
#   LABELS=100 SEMISUP_SEEDS=0 SEMISUP_IMAGES=128 ITER=2 TOY_SEEDS=0 PAIRS=4 OUT=/tmp/g \
#   bash benchmarks/gpu_session.sh perf,syncs,check,bigan,semisup,toys 120
set -u
PARTS=",${1:-perf,check},"
LIMIT=${2:-360}
ACC=${ACC:-gpu}
R=${OUT:-/tmp/out}/results
mkdir -p "$R"
R=$(cd "$R" && pwd)
cd "$(dirname "$0")/.."  # the repository root: python -m benchmarks.X
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
has() { [[ "$PARTS" == *",$1,"* ]]; }
note() { echo "$(date -u +%T) $2: exit $1" >> "$3"; }  # note STATUS NAME FILE
pack() { (cd "$R/.." && tar czf results.tgz --exclude="*.ckpt" --exclude=last.pt --exclude=zoo_export "$(basename "$R")"); }
(date -u; nproc; grep -m1 "model name" /proc/cpuinfo; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
 python3 -c "import torch, lightning, torchmetrics; print(torch.__version__, lightning.__version__, torchmetrics.__version__)"
 echo "parts: ${PARTS:1:-1}; limit per job: $LIMIT s") > "$R/env.txt" 2>&1

if has zoo; then  # first, with the GPU to itself
  Z="$R/zoo"; E="$R/zoo_export"
  mkdir -p "$Z" "$E"
  NAMES=${ZOO:-$(cd configs/zoo && ls -- *.yaml | sed 's/[.]yaml$//' | paste -sd, -)}
  ZOO_ARGS_pggan=${ZOO_ARGS_pggan:---fmap-base 8192 --fmap-max 256 --batch-size 64 --phase-images 60000 --phase-images-per-res 32:60000}
  ON=$( [ "$ACC" = gpu ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo CPU)
  for name in ${NAMES//,/ }; do
    model=${name%%.*}; extra_var="ZOO_ARGS_$model"
    ( OMP_NUM_THREADS=1 timeout "${ZOO_LIMIT:-390}" python3 scripts/fit.py --config "configs/zoo/$name.yaml" \
        --accelerator "$ACC" --max-images "${ZOO_IMAGES:-600000}" --metrics-every-images "${ZOO_EVERY:-50000}" \
        --logger csv --no-progress-bar ${!extra_var:-} --out "$Z/$name" > "$Z/$name.log" 2>&1
      note $? "zoo fit $name" "$R/status.txt" ) &
  done
  if [ "${ZOO_YARDSTICK:-1}" = 1 ]; then  # the plain PyTorch DCGAN every entry is compared with, beside them
    ( OMP_NUM_THREADS=1 timeout "${ZOO_LIMIT:-390}" python3 -m benchmarks.yardstick --out "$Z/yardstick" \
        --device "$( [ "$ACC" = gpu ] && echo cuda || echo cpu )" --max-images "${ZOO_IMAGES:-600000}" \
        --every-images "${ZOO_EVERY:-50000}" --no-progress-bar ${YARDSTICK_ARGS:-} > "$Z/yardstick.log" 2>&1
      note $? "zoo yardstick" "$R/status.txt" ) &
  fi
  wait
  for name in ${NAMES//,/ }; do
    [ -f "$Z/$name/checkpoints/last.ckpt" ] || continue
    ( OMP_NUM_THREADS=2 timeout 240 python3 scripts/export_pretrained.py "$Z/$name" --name "$name" \
        --recipe "configs/zoo/$name.yaml" --out "$E" --grid-dir "$E" --n "${ZOO_EXPORT_N:-10000}" \
        --trained-on "$ON" >> "$Z/$name.log" 2>&1
      note $? "zoo export $name" "$R/status.txt" ) &
  done
  wait
  (cd "$E" && tar czf - --exclude='*.lock' .) | split -b 15M -d - "$R/../zoo.tgz."
  CURVES=(); for d in "$Z"/*/; do [ -f "$d/logs/metrics.csv" ] && CURVES+=("$d"); done
  YS=(); [ -f "$Z/yardstick/logs/metrics.csv" ] && YS=(--yardstick "$Z/yardstick")
  python3 -m benchmarks.zoo_curves "${CURVES[@]}" "${YS[@]}" --png "$R/zoo_fid.png" > "$R/zoo_table.md" \
    2>> "$R/status.txt"
  note $? "zoo curves" "$R/status.txt"
  pack
fi

if has perf; then
  P="$R/perf"
  mkdir -p "$P"
  SEL=""
  [ -n "${MODELS:-}" ] && SEL="--models $MODELS --configs ${CONFIGS:-none}"
  ARGS="--accelerator $ACC --steps ${STEPS:-25} --warmup ${WARMUP:-10} $SEL"
  bench() {
    name=$1; limit=$2; shift 2
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} timeout "$limit" python3 -m benchmarks.benchmark $ARGS "$@" \
      --json "$P/$name.json" > "$P/$name.txt" 2> "$P/$name.err"
    note $? "$name" "$P/status.txt"
    pack
  }
  if [ "$ACC" = gpu ]; then
    timeout 45 python3 -m pytest -q -p no:cacheprovider tests/test_benchmark.py -k cuda_memory > "$P/pytest_cuda.txt" 2>&1
    note $? pytest_cuda "$P/status.txt"
  fi
  bench paths_bf16 "${LIMIT1:-250}" --repeats "${REPEATS:-5}" --channels-last --precision bf16-mixed --memory "${MEM:-cuda}"
  bench formats_bf16 "${LIMIT2:-130}" --repeats "${REPEATS:-3}" --compare formats --precision bf16-mixed --memory none
  bench paths_fp32 "${LIMIT3:-150}" --repeats "${REPEATS:-3}" --channels-last --precision 32-true --memory "${MEM:-cuda}"
  cat "$P/status.txt"
fi

if has syncs; then
  OMP_NUM_THREADS=4 timeout "$LIMIT" python3 -m benchmarks.gpu_syncs --precision bf16-mixed --json "$R/syncs.json" \
    > "$R/syncs.log" 2>&1
  note $? syncs "$R/status.txt"
fi

if has toys; then
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
fi

if has check; then
  ( OMP_NUM_THREADS=2 timeout "$LIMIT" python3 -m benchmarks.benchmark --check "${CHECK_PRECISIONS:-32-true,bf16-mixed,16-mixed}" \
      --accelerator "$ACC" ${CHECK_ARGS:---steps 150 --warmup 50} --json "$R/check.json" > "$R/check.log" 2>&1
    note $? check "$R/status.txt" ) &
fi
if has bigan; then
  for m in bigbigan bigan; do
    ( OMP_NUM_THREADS=2 timeout "$LIMIT" python3 scripts/fit.py --model $m --resolution 32 --accelerator "$ACC" \
        --max-images "${BIGAN_IMAGES:-300000}" --metrics fid --metric-samples 10000 --logger csv --no-progress-bar \
        --out "$R/$m" > "$R/$m.log" 2>&1
      fit=$?
      OMP_NUM_THREADS=4 timeout 180 python3 -m benchmarks.probe_benchmark --ckpt "$R/$m/checkpoints/last.ckpt" \
        --json "$R/probe_$m.json" >> "$R/$m.log" 2>&1
      note "$fit (fit), $? (probe)" "$m" "$R/status.txt" ) &
  done
fi
if has semisup; then
  ( timeout "$LIMIT" python3 -m benchmarks.semisup_benchmark --data fashion_mnist --labels "${LABELS:-100,1000}" \
      --seeds "${SEMISUP_SEEDS:-0,1,2,3,4}" --max-images "${SEMISUP_IMAGES:-300000}" --every-images 50000 --jobs 12 \
      --extra "--accelerator $ACC" --out "$R/semisup" --json "$R/semisup.json" --jsonl "$R/semisup.jsonl" \
      > "$R/semisup.log" 2>&1
    note $? semisup "$R/status.txt" ) &
fi
if has toys; then
  ITER=${ITER:-12000}
  for P in ${PAIRS:-4 8}; do
    ( timeout "$LIMIT" python3 -m benchmarks.toy_benchmark --models sgan --toys grid25 --seeds "${TOY_SEEDS:-0,1,2,3,4}" \
        --iterations "$ITER" --n-pairs "$P" --jobs 5 --out "$R/toys_p$P" --jsonl "$R/toys.jsonl" \
        --extra "--accelerator $ACC --metrics-every-images $((2000 * 256 * P)) --ckpt-every-images 100000000" \
        > "$R/toys_p$P.log" 2>&1
      note $? "toys_p$P" "$R/status.txt" ) &
  done
fi
wait
if has toys; then
  pkill -f "$R/toys_p"  # the fits still going (their --out is under $R)
  sleep 2
  [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] && echo quit | nvidia-cuda-mps-control
fi
date -u >> "$R/env.txt"
find "$R" -name "*.ckpt" -delete
pack
cat "$R/status.txt" 2>/dev/null
ls -la "$R/../results.tgz"
