#!/usr/bin/env bash
# Reproduce the shipped weights: three stages (fp pre-training, ANA quantisation, descriptor fine-tuning).
# Usage: scripts/train_default.sh [DATA_DIR] [RUN_ROOT] [MINUTES_STAGE1 MINUTES_STAGE2 MINUTES_STAGE3]
# Each stage resumes from its checkpoint when re-run with the same RUN_ROOT.
set -euo pipefail
DATA=${1:-../shared/data/train-images}
ROOT=${2:-runs/default}
M1=${3:-70}; M2=${4:-35}; M3=${5:-12}
zippypoint train --config configs/stage1_fp.json --data "$DATA" --out "$ROOT/stage1" --max-minutes "$M1"
zippypoint train --config configs/stage2_ana.json --data "$DATA" --out "$ROOT/stage2" --max-minutes "$M2" \
    --init "$ROOT/stage1/final.safetensors"
zippypoint train --config configs/stage3_desc.json --data "$DATA" --out "$ROOT/stage3" --max-minutes "$M3" \
    --init "$ROOT/stage2/final.safetensors"
