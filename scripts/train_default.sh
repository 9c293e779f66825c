#!/usr/bin/env bash
# Reproduce the shipped weights: fp pre-training, ANA quantisation, descriptor fine-tuning (stages 1-3, CPU),
# then int8-exact quantisation-aware fine-tuning at 320x240 (stages 5 and 6: one H200 GPU ran them in 4.5 and
# 6 minutes; on a 2-core CPU expect about 15 s a step, i.e. many hours).
# Stage 7 (the issue-11 recipe: rigid rotations, hard codes, repulsion, detached descriptor points, ALIKED-t16
# distillation) fine-tunes the result at 320x240; it needs the peer weights (python -m zippypoint.methods.peer_weights)
# and runs only when MINUTES_STAGE7 > 0. Photos of the fixed development split are never trained on.
# Usage: scripts/train_default.sh [DATA_DIR] [RUN_ROOT] [MINUTES_STAGE1 2 3 5 6 7]
# Each stage resumes from its checkpoint when re-run with the same RUN_ROOT.
set -euo pipefail
DATA=${1:-../shared/data/train-images}
ROOT=${2:-runs/default}
M1=${3:-70}; M2=${4:-35}; M3=${5:-12}; M5=${6:-6.5}; M6=${7:-6}; M7=${8:-0}
zippypoint train --config configs/stage1_fp.json --data "$DATA" --out "$ROOT/stage1" --max-minutes "$M1"
zippypoint train --config configs/stage2_ana.json --data "$DATA" --out "$ROOT/stage2" --max-minutes "$M2" \
    --init "$ROOT/stage1/final.safetensors"
zippypoint train --config configs/stage3_desc.json --data "$DATA" --out "$ROOT/stage3" --max-minutes "$M3" \
    --init "$ROOT/stage2/final.safetensors"
zippypoint train --config configs/stage5_int8_qat.json --data "$DATA" --out "$ROOT/stage5" --max-minutes "$M5" \
    --init "$ROOT/stage3/final.safetensors"
zippypoint train --config configs/stage5_int8_qat.json --data "$DATA" --out "$ROOT/stage6" --max-minutes "$M6" \
    --epochs 40 --init "$ROOT/stage5/final.safetensors"
if [ "$M7" != "0" ]; then
    zippypoint train --config configs/stage7_finetune_distill.json --data "$DATA" --out "$ROOT/stage7" \
        --max-minutes "$M7" --init "$ROOT/stage6/final.safetensors"
fi
