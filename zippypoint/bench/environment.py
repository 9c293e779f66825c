"""What the speed numbers depend on: CPU model and ISA flags, cores, threads, library versions, load.

``capture_environment`` reads only; ``set_threads`` is the one function that changes process state (the
thread pools of torch, OpenCV and faiss), and the benchmark calls it once before timing.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

from zippypoint.machine import cpu_model, isa_flags

LIBRARIES = ("numpy", "torch", "onnxruntime", "opencv-python-headless", "opencv-python", "kornia", "onnx",
             "faiss-cpu", "coremltools", "scikit-image")


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def oversubscribed(load_start: list[float] | None, load_end: list[float] | None, cores: int) -> bool | None:
    """Whether the 1-minute load average exceeded the usable cores at the start or the end (None: unknown).
    Then thread pools that wait at barriers (OpenMP in torch) stall whenever one of their threads is
    descheduled, and multi-threaded medians overstate the cost."""
    loads = [v[0] for v in (load_start, load_end) if v]
    return None if not loads else max(loads) > cores


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries the timed methods use (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def thread_settings() -> dict[str, int | None]:
    """The thread counts the libraries report right now (None where a library is not imported)."""
    import sys

    out: dict[str, int | None] = {"torch": None, "opencv": None, "faiss": None}
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_num_threads()
    if "cv2" in sys.modules:
        out["opencv"] = sys.modules["cv2"].getNumThreads()
    if "faiss" in sys.modules:
        out["faiss"] = sys.modules["faiss"].omp_get_max_threads()
    return out


def set_threads(threads: int, *, torch: bool = True) -> None:
    """Use ``threads`` intra-op threads in torch (when ``torch``), OpenCV and faiss. ONNX Runtime sessions
    take the same number through their options (see ``zippypoint.runtime.latency.make_session``)."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    import cv2

    cv2.setNumThreads(threads)
    if torch:
        import torch as _torch

        _torch.set_num_threads(threads)
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(threads)


def capture_environment(threads: int) -> dict:
    """Machine, OS, versions and the load average now (the caller adds the load at the end)."""
    return {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "isa": isa_flags(),
        "threads": threads,
        "libraries": library_versions(),
        "load_average_start": load_average(),
    }


def isa_summary(isa: dict[str, bool]) -> str:
    """'avx2, avx512f, avx512_vnni' style list of the flags present ('unknown' when none were read)."""
    present = [flag for flag, on in isa.items() if on]
    return ", ".join(present) if present else "unknown"
