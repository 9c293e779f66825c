#!/usr/bin/env bash
# Deployment-only install check: a fresh virtualenv (no system site-packages) with numpy, onnxruntime and
# opencv-python-headless from PyPI, the zippypoint sources on PYTHONPATH and no torch, extracts features with
# an exported ONNX model, through the Python API and through `zippypoint extract --runtime onnx|onnx-int8`.
#
#   scripts/check_deploy_env.sh MODEL.onnx [VENV_DIR] [IMAGE]
#
# MODEL.onnx comes from `zippypoint export --format onnx|onnx-int8 ...`. VENV_DIR defaults to a temporary
# folder (removed afterwards). IMAGE defaults to a synthetic image.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 MODEL.onnx [VENV_DIR] [IMAGE]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
model="$(realpath "$1")"
image="${3:-}"
if [ -n "${2:-}" ]; then
    venv="$2"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    venv="$tmp/venv"
fi
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy onnxruntime opencv-python-headless

# PYTHONPATH instead of an install: the package metadata lists torch, which a deployment does not need
cd "$venv"
PYTHONPATH="$repo" "$venv/bin/python" - "$model" "$image" <<'PY'
import importlib.util
import sys

import numpy as np

assert importlib.util.find_spec("torch") is None, "torch is installed in the deployment environment"
from zippypoint.runtime import OnnxExtractor

model, image = sys.argv[1], sys.argv[2]
if not image:
    rng = np.random.default_rng(0)
    image = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
extractor = OnnxExtractor(model, max_keypoints=500)
feats = extractor.extract(image)
n = len(feats["scores"])
assert feats["keypoints"].shape == (n, 2) and feats["descriptors"].shape == (n, 32)
assert (np.unpackbits(feats["descriptors"], axis=1).sum(1) == 64).all()
assert "torch" not in sys.modules
print(f"deployment environment OK: {extractor.metadata.preset} ({extractor.metadata.format}), {n} keypoints, "
      f"python {sys.version.split()[0]}, numpy {np.__version__}")
PY

# the command line, as a deployment uses it
out="$(mktemp -d)"
if [ -z "$image" ]; then
    image="$out/synthetic.png"
    PYTHONPATH="$repo" "$venv/bin/python" -c "import sys, numpy as np, cv2; rng = np.random.default_rng(0); cv2.imwrite(sys.argv[1], (rng.random((240, 320, 3)) * 255).astype(np.uint8))" "$image"
fi
runtime="$(PYTHONPATH="$repo" "$venv/bin/python" -c "import sys; from zippypoint.runtime import OnnxExtractor; print(OnnxExtractor(sys.argv[1]).metadata.format)" "$model")"
PYTHONPATH="$repo" "$venv/bin/python" -m zippypoint.cli extract --runtime "$runtime" --model "$model" --max-keypoints 500 --out "$out" "$image"
ls "$out"/*.npz > /dev/null
rm -rf "$out"
echo "deployment CLI OK: zippypoint extract --runtime $runtime"
