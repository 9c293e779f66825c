"""Import hygiene and the CLI surface."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_has_no_side_effects_and_no_torch():
    r = _run("import sys, zippypoint; print('torch' in sys.modules); print(zippypoint.__version__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "0.1.0"]
    assert r.stderr == ""


def test_lazy_attributes_resolve():
    import zippypoint

    assert "zippypoint" in zippypoint.list_models()
    with pytest.raises(AttributeError):
        zippypoint.not_a_thing  # noqa: B018


def test_model_builds_offline_with_random_weights():
    r = _run("import torch, zippypoint; m = zippypoint.create_model('zippypoint'); print(sum(p.numel() for p in m.parameters()))")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 5197539


@pytest.mark.parametrize("command", ["extract", "match", "demo", "info", "train", "evaluate", "make-benchmark", "export"])
def test_cli_help(command):
    from zippypoint.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0


def test_info_prints_the_complexity_table(capsys):
    from zippypoint.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| zippypoint |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "5.198" and cells[2] == "1.272"
    assert cells[3] == "10.18" and cells[4] == "40.72" and cells[5] == "8.49"


def test_info_names_the_default_runtime_and_the_cpu_flags_it_reads(capsys, monkeypatch):
    from zippypoint.cli import main

    monkeypatch.setattr("zippypoint.machine.isa_flags", lambda: {"avx2": True, "fma": True})
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "zippypoint-openvino.xml" in out  # the packaged 1-bit IR is listed with the others
    line = next(line for line in out.splitlines() if line.startswith("zippypoint: "))
    assert line.endswith("default runtime here: openvino")
    assert "flags: avx2 fma (x86 without AMX" in out
    assert "default preset: zippypoint-slim-h64-noh2 " in out
