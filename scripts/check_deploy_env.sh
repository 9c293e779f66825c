#!/usr/bin/env bash
# The light install, as a user gets it: a fresh virtualenv (no system site-packages), `pip install REPO` with its
# real base dependencies (no extras, no --no-deps) and no torch; then, from an unrelated folder,
# `zippypoint info`, `zippypoint demo` and `zippypoint extract` on the packaged int8 model, and the Python API.
#
#   scripts/check_deploy_env.sh [VENV_DIR] [MODEL.onnx]
#
# VENV_DIR defaults to a temporary folder (removed afterwards). MODEL.onnx: also extract with this exported
# file (from `zippypoint export --format onnx|onnx-int8`). pip's download cache is used when present.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
venv="${1:-$tmp/venv}"
model="${2:+$(realpath "$2")}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$repo"
if "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "torch is importable after the base install; the light install must not pull it" >&2
    exit 1
fi
zp="$venv/bin/zippypoint"
work="$tmp/work"  # an unrelated folder: nothing may depend on the current directory
mkdir -p "$work/images/sub"
cd "$work"
"$zp" info > info.txt
grep -q "zippypoint-int8.onnx" info.txt
"$zp" demo --out demo.png --max-keypoints 500 | tee demo.txt
# a packaged OpenVINO IR, never an export (the 1-bit one on x86 without AMX, else the int8 one)
grep -Eq "\((openvino|openvino-int8)\)" demo.txt
test -s demo.png
"$venv/bin/python" - <<'PY'
import sys

import cv2
import numpy as np

from zippypoint.demo import sample_photo

cv2.imwrite("images/a.jpg", sample_photo("coffee"))
cv2.imwrite("images/sub/a.jpg", sample_photo("astronaut"))
assert "torch" not in sys.modules
PY
"$zp" extract images --out feats --max-keypoints 500
test -s feats/a.npz && test -s feats/sub/a.npz
"$venv/bin/python" - "$model" <<'PY'
import sys

import numpy as np

from zippypoint.resolve import build_extractor
from zippypoint.runtime import OnnxExtractor

for path in ("feats/a.npz", "feats/sub/a.npz"):
    with np.load(path) as f:
        n = len(f["scores"])
        assert 0 < n <= 500 and f["keypoints"].shape == (n, 2) and f["descriptors"].shape == (n, 32)
        assert (np.unpackbits(f["descriptors"], axis=1).sum(1) == 64).all()
extractors = [build_extractor("zippypoint", "onnx-int8")]
if sys.argv[1]:
    extractors.append(OnnxExtractor(sys.argv[1], max_keypoints=500))
rng = np.random.default_rng(0)
for e in extractors:
    feats = e.extract((rng.random((240, 320, 3)) * 255).astype(np.uint8))
    assert feats["descriptors"].shape[1] == 32
assert "torch" not in sys.modules, "the light path imported torch"
print(f"deployment environment OK: python {sys.version.split()[0]}, numpy {np.__version__}, no torch")
PY
echo "deployment CLI OK: zippypoint info, demo and extract without torch"
