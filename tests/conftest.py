"""Shared fixtures: real photos, tiny models, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# property tests check values, not speed: no per-example deadline on a shared, noisy machine
settings.register_profile("zippypoint", deadline=None)
settings.load_profile("zippypoint")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ZIPPYPOINT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def photo_bgr() -> np.ndarray:
    """A real photo bundled with scikit-image (BGR uint8, 400x600)."""
    from zippypoint.demo import sample_photo

    return sample_photo("coffee")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts are not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped_weights_available(name: str = "zippypoint") -> bool:
    from zippypoint.model.registry import get_preset

    path = get_preset(name).weights_path()
    return bool(path and path.exists())


requires_weights = pytest.mark.skipif(not shipped_weights_available(), reason="shipped zippypoint weights not present")
