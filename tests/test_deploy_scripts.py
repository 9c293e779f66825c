"""The deployment script (export/export_model.py) and the stage benchmark (benchmarks/run_benchmark.py)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from skimage import data as skdata

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), (320, 240)))
    return path


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=REPO)


def test_deployment_folder_records_files_and_agreement(tmp_path, photo):
    out = run("export/export_model.py", "--formats", "onnx", "--out", str(tmp_path / "deploy"), "--check",
              str(photo), "--max-keypoints", "200")
    assert out.returncode == 0, out.stderr[-2000:]
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    entry = manifest["formats"]["onnx"]
    assert (tmp_path / "deploy" / entry["file"]).stat().st_size == entry["bytes"]
    # the fp32 export computes what PyTorch computes: nearly every keypoint and descriptor bit agrees
    assert entry["agreement_with_pytorch"]["keypoints_within_1px"] > 0.9
    assert entry["agreement_with_pytorch"]["descriptor_bits_equal"] > 0.95
    assert "build_extractor" in (tmp_path / "deploy" / "README.md").read_text()


def test_deployment_script_refuses_unknown_formats(tmp_path, photo):
    out = run("export/export_model.py", "--formats", "tflite", "--out", str(tmp_path), "--check", str(photo))
    assert out.returncode == 2 and "--formats" in out.stderr


def test_stage_benchmark_times_every_stage(tmp_path, photo):
    out = run("benchmarks/run_benchmark.py", "--images", str(photo), "--size", "160x120", "--runtimes", "torch",
              "--runs", "2", "--warmup", "1", "--block", "1", "--json", str(tmp_path / "stages.json"))
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "stages.json").read_text())["results"]["torch"]
    assert set(results["stages"]) == {"pre", "network", "post"}
    assert results["end_to_end"]["runs"] == 2 and "| torch |" in out.stdout
