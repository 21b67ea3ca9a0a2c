#!/usr/bin/env bash
# Issue 16 on one GPU: image folder -> fit throughput, compiled forward, timm's loader.
#
# Run from the repository root on the device machine (H100, 16 host cores, ~8 minutes):
#     bash benchmarks/gpu_issue16.sh
# Writes image-folder-<card>.json/.md and the log into $OUT (default benchmarks/results);
# the JSON is rewritten after every measurement, so a run cut short still returns figures.
# Just some figures: MODELS="vit_base_patch16_224" STEPS="fit_folder decode_auto_only timm_loader"
# (forward_eager always; MODEL:STEP for one model; see bench_image_folder.py --help), and
# PROFILE=1 to run benchmarks/profile_decode.py first (stage by stage, <= 120 s). The short run:
#     PROFILE=1 MODELS=vit_base_patch16_224 EXTRA_MODES= DEADLINE=150 \
#     STEPS="fit_folder decode_auto_only timm_loader" bash benchmarks/gpu_issue16.sh
# Sizes are environment variables (CPU smoke test:
#     DEVICE=cpu MODELS="test_vit test_resnet" N_IMAGES=24 BATCH=8 WORKERS=2 \
#     DEADLINE=300 OUT=/tmp/out bash benchmarks/gpu_issue16.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
PY=${PYTHON:-python}
N_IMAGES=${N_IMAGES:-10240}
BATCH=${BATCH:-256}
WORKERS=${WORKERS:-16}
DEVICE=${DEVICE:-cuda}
MODELS=${MODELS:-vit_base_patch16_224 resnet50}
EXTRA_MODES=${EXTRA_MODES-reduce-overhead max-autotune-no-cudagraphs}  # "" for none
FOLDER=${FOLDER:-/tmp/faast_photos_$N_IMAGES}
DEADLINE=${DEADLINE:-400}  # seconds of the benchmark proper, after the folder is made
STEPS=${STEPS:-}  # "" for all
PROFILE=${PROFILE:-0}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# The inductor cache in a fresh place: warm-ups measured cold, as a first run would be.
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$(mktemp -d)}
mkdir -p "$OUT"
LOG="$OUT/gpu_issue16.log"
stamp() { date -u +%H:%M:%S; }
{
  echo "[$(stamp)] start; host cores: $(nproc)"
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, timm, torchvision, PIL; print('torch', torch.__version__, 'timm', timm.__version__, 'torchvision', torchvision.__version__, 'PIL', PIL.__version__, 'cuda', torch.cuda.is_available())"
  $PY -c "import skimage" 2>/dev/null || echo "scikit-image missing: the folder uses scikit-learn's 2 photographs only"
  if [ ! -d "$FOLDER" ]; then
    echo "[$(stamp)] making $N_IMAGES JPEGs in $FOLDER with $WORKERS processes"
    $PY benchmarks/make_photo_folder.py "$FOLDER" --n "$N_IMAGES" --jobs "$WORKERS" || exit 1
  fi
  echo "[$(stamp)] folder: $(find "$FOLDER" -name '*.jpg' | wc -l) files, $(du -sh "$FOLDER" | cut -f1)"
  if [ "$DEVICE" != cpu ] && $PY -c "import pytest" 2>/dev/null; then
    echo "[$(stamp)] nvJPEG decode against timm's transform (tests/test_decode.py, on CUDA)"
    timeout 60 $PY -m pytest tests/test_decode.py -q -x -p no:cacheprovider -k "nvjpeg or auto or scan" 2>&1 | tail -3
  fi
  if [ "$PROFILE" = 1 ]; then
    echo "[$(stamp)] profile_decode.py"
    timeout --signal=TERM --kill-after=10 200 $PY benchmarks/profile_decode.py --folder "$FOLDER" \
      --device "$DEVICE" --workers "$WORKERS" --batch "$BATCH" --budget 120 \
      --out "$OUT/profile-decode.json"
  fi
  # shellcheck disable=SC2086
  timeout --signal=TERM --kill-after=10 $((DEADLINE + 40)) \
    $PY benchmarks/bench_image_folder.py --folder "$FOLDER" --n-images "$N_IMAGES" \
    --device "$DEVICE" --batch-size "$BATCH" --workers "$WORKERS" --repeats 2 \
    --models $MODELS --extra-modes $EXTRA_MODES --deadline "$DEADLINE" --out-dir "$OUT" \
    ${STEPS:+--steps $STEPS}
  echo "[$(stamp)] done, rc=$?"
} 2>&1 | tee "$LOG"
