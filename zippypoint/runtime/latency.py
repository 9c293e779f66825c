"""Latency of ONNX models under ONNX Runtime, measured side by side (torch-free)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from zippypoint.machine import cpu_model
from zippypoint.timing import interleaved_times


def make_session(path: str | Path, threads: int = 2):
    """A CPU session with the options used for every timing (full graph optimisation, fixed thread count)."""
    from zippypoint.ort_session import cpu_session, session_options

    return cpu_session(path, session_options(threads, sequential=True))


def compare_latency(paths: dict[str, str | Path], size: tuple[int, int], *, runs: int = 20, warmup: int = 3,
                    threads: int = 2, seed: int = 0) -> dict[str, dict[str, float]]:
    """Median/min/mean latency (ms) of each model on one (1, C, H, W) input of ``size`` = (W, H).

    Runs are interleaved (model A, B, C, A, B, C, ...; ``zippypoint.timing``) so background load affects all
    models alike.
    """
    sessions = {name: make_session(p, threads) for name, p in paths.items()}
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, s in sessions.items():
        inp = s.get_inputs()[0]
        feeds[name] = {inp.name: rng.random((1, inp.shape[1], size[1], size[0]), dtype=np.float32)}
    times = interleaved_times({name: (lambda r, s=s, feed=feeds[name]: s.run(None, feed))
                               for name, s in sessions.items()}, runs, warmup=warmup)
    return {name: {"median_ms": float(np.median(t)), "min_ms": float(np.min(t)), "mean_ms": float(np.mean(t)),
                   "runs": len(t)} for name, t in times.items()}


def machine_description() -> dict[str, str]:
    """CPU model, core count, OS and ONNX Runtime version, for benchmark notes."""
    import os

    import onnxruntime as ort

    return {"cpu": cpu_model(), "logical_cores": str(os.cpu_count()), "os": platform.platform(),
            "python": platform.python_version(), "onnxruntime": ort.__version__}
