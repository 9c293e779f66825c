"""Environment capture and thread settings of the benchmark; the bench package imports no torch."""

import subprocess
import sys

import pytest

from zippypoint.bench import environment
from zippypoint.machine import ISA_FLAGS


def test_capture_environment_records_machine_versions_and_load():
    env = environment.capture_environment(threads=1)
    assert env["threads"] == 1
    assert isinstance(env["cpu"], str) and env["cpu"]
    assert env["usable_cores"] >= 1 and env["logical_cores"] >= env["usable_cores"]
    assert set(env["isa"]) <= set(ISA_FLAGS)
    assert all(isinstance(v, bool) for v in env["isa"].values())
    libs = env["libraries"]
    for name in ("python", "numpy", "onnxruntime", "torch"):
        assert name in libs
    if sys.platform.startswith("linux"):
        assert len(env["load_average_start"]) == 3
        assert env["isa"], "Linux exposes /proc/cpuinfo flags"


def test_isa_summary_lists_present_flags():
    assert environment.isa_summary({"avx2": True, "avx512f": False, "avx512_vnni": True}) == "avx2, avx512_vnni"
    assert environment.isa_summary({}) == "unknown"


def test_set_threads_applies_to_opencv_and_torch():
    import cv2
    import torch

    before = (cv2.getNumThreads(), torch.get_num_threads())
    try:
        environment.set_threads(1)
        assert cv2.getNumThreads() == 1
        assert torch.get_num_threads() == 1
        assert environment.thread_settings()["torch"] == 1
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2"])
def test_set_threads_refuses_bad_counts(bad):
    with pytest.raises(ValueError, match="positive int"):
        environment.set_threads(bad)


def test_bench_modules_do_not_import_torch():
    code = ("import sys; import zippypoint.timing, zippypoint.bench.environment, zippypoint.bench.matching, "
            "zippypoint.bench.profile, zippypoint.bench.report, zippypoint.bench.runner, zippypoint.bench.methods, "
            "zippypoint.bench.models, zippypoint.commands.benchmark; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_oversubscription_compares_the_one_minute_load_with_the_cores():
    assert environment.oversubscribed([2.5, 1.0, 1.0], [1.0, 1.0, 1.0], cores=2) is True
    assert environment.oversubscribed([1.5, 9.0, 9.0], None, cores=2) is False  # 5 and 15 minutes do not count
    assert environment.oversubscribed(None, None, cores=2) is None
