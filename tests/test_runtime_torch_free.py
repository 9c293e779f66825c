"""The deployment runtime works where torch cannot be imported."""

import os
import subprocess
import sys

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


@pytest.mark.slow
def test_deployment_only_environment(tmp_path):
    """A fresh venv with numpy, onnxruntime and opencv only (from PyPI) runs extraction on an exported model."""
    script = REPO / "scripts" / "check_deploy_env.sh"
    res = subprocess.run(["bash", str(script), str(exported("onnx-int8")), str(tmp_path / "venv")],
                         capture_output=True, text=True, check=False, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "deployment environment OK" in res.stdout
    assert "deployment CLI OK" in res.stdout
