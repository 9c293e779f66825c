"""Errors people can act on: one line naming the problem and the fix, exit code 2 for usage errors (before any
work) and 1 for failed work; a traceback only with --debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest

from zippypoint.cli import EXIT_FAILED, EXIT_USAGE, UsageError, main
from zippypoint.demo import sample_photo


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "a.png"
    cv2.imwrite(str(path), cv2.resize(sample_photo("coffee"), (160, 120)))
    return path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, fix", [
    (["demo", "--sample", "nosuch"], "choose one of astronaut"),
    (["extract", "{img}", "--out", "{tmp}/o", "--model", "nosuch"], "available"),
    (["extract", "{img}", "--out", "{tmp}/o", "--resize", "10x10"], "at least 24x24"),
    (["extract", "{img}", "--out", "{tmp}/o", "--resize", "big"], "--resize must look like 640x480"),
    (["extract", "{img}", "--out", "{tmp}/o", "--model", "{tmp}/none.onnx"], "pass an exported file"),
    (["extract", "{img}", "--out", "{tmp}/o", "--weights", "{tmp}/none.safetensors"], "pass a .safetensors"),
    (["extract", "{img}", "--out", "{img}"], "pass a folder"),
    (["extract", "{img}", "--out", "{tmp}/o", "--max-size", "-1"], "--max-size must be >= 0"),
    (["match", "{img}", "{img}", "--out", "{tmp}/m.bmpx"], "use .png or .jpg"),
    (["demo", "--out", "{tmp}/d.bmpx"], "use .png or .jpg"),
    (["train", "--config", "{tmp}/missing.json", "--data", "{tmp}", "--out", "{tmp}/r"], "configs/"),
    (["train", "--config", "{tmp}/unknown.json", "--data", "{tmp}", "--out", "{tmp}/r"], "unknown TrainConfig keys"),
    (["train", "--config", "{tmp}/invalid.json", "--data", "{tmp}", "--out", "{tmp}/r"], "not valid JSON"),
    (["train", "--config", "{tmp}/ok.json", "--data", "{tmp}/nodata", "--out", "{tmp}/r"], "no such folder"),
    (["export", "--format", "onnx", "--out", "{tmp}/m.onx"], "use --out"),
    (["export", "--format", "onnx-int8", "--out", "{tmp}/m.onnx", "--calibration-dir", "{tmp}/none"],
     "pass --calibration-dir DIR"),
    (["export", "--format", "onnx", "--model", "nosuch", "--out", "{tmp}/m.onnx"], "unknown model"),
])
def test_usage_errors_exit_2_with_one_line_before_any_work(argv, fix, image, tmp_path, capsys):
    (tmp_path / "unknown.json").write_text(json.dumps({"nope": 1}))
    (tmp_path / "invalid.json").write_text("{")
    (tmp_path / "ok.json").write_text("{}")
    argv = [a.format(img=image, tmp=tmp_path) for a in argv]
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == EXIT_USAGE
    err = _one_line(capsys)
    assert fix in err and "error:" in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing was written


def test_failed_work_exits_1_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["match", str(bad), str(bad), "--out", str(tmp_path / "m.png")]) == EXIT_FAILED
    err = _one_line(capsys)
    assert "not a decodable image" in err and err.count(str(bad)) == 1
    with pytest.raises(ValueError):
        main(["--debug", "match", str(bad), str(bad), "--out", str(tmp_path / "m.png")])
    monkeypatch.setenv("ZIPPYPOINT_DEBUG", "1")
    with pytest.raises(UsageError):
        main(["demo", "--sample", "nosuch"])


def test_missing_optional_package_names_the_extra():
    from zippypoint.cli import error_line

    exc = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert error_line(exc) == ("this needs the optional package 'torch', which is not installed here: "
                               "pip install 'zippypoint[torch]'")


def test_int8_export_never_reads_the_current_folder(tmp_path):
    """From an unrelated folder without ZIPPYPOINT_DATA, the int8 export asks for calibration photos."""
    env = {k: v for k, v in os.environ.items() if k != "ZIPPYPOINT_DATA"}
    res = subprocess.run([sys.executable, "-m", "zippypoint.cli", "export", "--format", "onnx-int8", "--out",
                          str(tmp_path / "m.onnx"), "--calibration-dir", str(tmp_path / "photos")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == EXIT_USAGE, res.stderr
    assert "--calibration-dir DIR" in res.stderr and "ZIPPYPOINT_DATA" in res.stderr
    assert not (tmp_path / "m.onnx").exists()
