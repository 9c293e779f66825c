"""Shared inputs for the export and runtime tests: one seeded random network per preset and one export
per (format, preset), cached for the whole test session (exports take seconds each)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PHOTOS = DATA / "train-images"
HPATCHES = DATA / "hpatches-dev"
CALIBRATION_COUNT = 8

_TMP = Path(tempfile.mkdtemp(prefix="zippypoint-export-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


def require_photos() -> None:
    if not PHOTOS.is_dir():
        pytest.skip(f"real photos not found at {PHOTOS}")


@functools.cache
def reference_model(preset: str = "zippypoint"):
    """Seeded random weights in eval mode (the shipped weights do not exist during development)."""
    import torch

    from zippypoint.model.registry import create_model

    torch.manual_seed(0)
    return create_model(preset).eval()


@functools.cache
def exported(fmt: str, preset: str = "zippypoint") -> Path:
    from zippypoint.export.exporter import export_model

    kwargs = {}
    if fmt == "onnx-int8":
        require_photos()
        kwargs = {"calibration_dir": PHOTOS, "calibration_count": CALIBRATION_COUNT}
    suffix = ".mlpackage" if fmt == "coreml" else ".onnx"
    return export_model(fmt, _TMP / f"{preset}-{fmt}{suffix}", preset, net=reference_model(preset), **kwargs)


def sample_photos(count: int) -> list[Path]:
    """Real photos that are not among the calibration images (odd positions of the spread)."""
    from zippypoint.export.int8 import find_images

    require_photos()
    spread = find_images(PHOTOS, 4 * CALIBRATION_COUNT + 1)
    calibration = set(find_images(PHOTOS, CALIBRATION_COUNT))
    return [p for p in spread if p not in calibration][1::3][:count]


def assert_folded_equals_network(model, x, **fold_options) -> None:
    """The folded deployment view of full-precision ``model`` (``FoldedZippyPoint(model, **fold_options)``)
    gives the network's outputs on ``x`` to float tolerance."""
    import torch

    from zippypoint.export.folded import FoldedZippyPoint

    folded = FoldedZippyPoint(model, **fold_options)
    with torch.no_grad():
        a, b = model(x), folded(x)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=1e-5)
