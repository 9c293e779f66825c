"""The deployment runtime works where torch cannot be imported."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from export_helpers import REPO, exported

SCRIPT = """
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
import numpy as np
from zippypoint.runtime import OnnxExtractor
e = OnnxExtractor(sys.argv[1], max_keypoints=50)
rng = np.random.default_rng(0)
f = e.extract((rng.random((96, 128, 3)) * 255).astype(np.uint8))
assert f["descriptors"].shape[1] == 32 and len(f["scores"]) <= 50
assert sys.modules["torch"] is None
print("ok", e.metadata.format, len(f["scores"]))
"""


def _run(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=False, **kwargs)


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_runtime_without_torch(fmt):
    res = _run("-c", SCRIPT, str(exported(fmt)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"ok {fmt}")


def test_runtime_import_does_not_import_torch():
    res = _run("-c", "import sys, zippypoint.runtime.onnx_extractor, zippypoint.runtime.latency; "
                     "print('torch' in sys.modules)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


BLOCKED = ("torch", "torchvision", "kornia", "skimage", "matplotlib", "safetensors", "PIL", "onnx", "onnxscript")
CLI = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # as in the light install: these imports now fail
from zippypoint.cli import main
code = main(sys.argv[1:])
assert not any(sys.modules.get(name) for name in {BLOCKED!r})
sys.exit(code)
"""


def test_cli_info_demo_extract_match_without_torch(tmp_path):
    """The light install's commands on the packaged int8 model, from an unrelated folder, no export."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ZIPPYPOINT_CACHE": str(tmp_path / "cache")}

    def cli(*args):
        return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, check=False)

    info = cli("info")
    assert info.returncode == 0, info.stderr
    assert "zippypoint-int8.onnx" in info.stdout and "pip install 'zippypoint[torch]'" in info.stdout
    demo = cli("demo", "--out", "demo.png", "--max-keypoints", "300")
    assert demo.returncode == 0, demo.stderr
    from zippypoint.resolve import default_runtime

    # the packaged IR this CPU gets (the 1-bit one on x86 without AMX, else the int8 one), never an export
    assert default_runtime("zippypoint") in ("openvino", "openvino-int8")
    assert f"({default_runtime('zippypoint')})" in demo.stdout and (tmp_path / "demo.png").is_file()
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), cv2.GaussianBlur((rng.random((120, 160)) * 255).astype(np.uint8),
                                                                   (5, 5), 0))
    extract = cli("extract", "imgs", "--out", "feats", "--max-keypoints", "100")
    assert extract.returncode == 0, extract.stderr
    with np.load(tmp_path / "feats" / "a.npz") as f:
        assert f["descriptors"].shape == (len(f["scores"]), 32)
    match = cli("match", "imgs/a.png", "imgs/a.png", "--out", "m.png")
    assert match.returncode == 0, match.stderr
    assert not (tmp_path / "cache").exists()  # nothing exported on first use
    torch_needed = cli("extract", "imgs", "--out", "feats2", "--runtime", "torch")
    assert torch_needed.returncode == 1
    assert "pip install 'zippypoint[torch]'" in torch_needed.stderr and "Traceback" not in torch_needed.stderr


@pytest.mark.slow
def test_light_install_in_a_clean_venv(tmp_path):
    """`pip install REPO` (base dependencies from the package registry, no extras, no torch) into a fresh venv
    runs `zippypoint info`, `demo` and `extract` from an unrelated folder, and extracts with an exported file."""
    script = REPO / "scripts" / "check_deploy_env.sh"
    res = subprocess.run(["bash", str(script), str(tmp_path / "venv"), str(exported("onnx-int8"))],
                         capture_output=True, text=True, check=False, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "deployment environment OK" in res.stdout
    assert "deployment CLI OK" in res.stdout
