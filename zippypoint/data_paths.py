"""Where the project's data sets live: one setting, the environment variable ``ZIPPYPOINT_DATA``.

Library functions take data paths as arguments; command-line defaults and the int8 export's default
calibration folder come from :func:`data_root`. Without the variable it is ``../shared/data`` relative to the
working directory (a checkout next to the shared data folder); point it elsewhere to use your own copy:
``ZIPPYPOINT_DATA=/data/zippypoint zippypoint evaluate``. Expected layout: ``hpatches-dev/`` (HPatches-layout
sequences), ``train-images/`` (photos for training and int8 calibration), ``kitti-0001/``.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ZIPPYPOINT_DATA"
FALLBACK_ROOT = Path("../shared/data")


def data_root(*, fallback: bool = True) -> Path | None:
    """``$ZIPPYPOINT_DATA`` when set (and not empty), else ``../shared/data`` (None with ``fallback=False``, for
    code that must not guess a folder)."""
    value = os.environ.get(DATA_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    return FALLBACK_ROOT if fallback else None


def data_path(*parts: str) -> Path:
    """A path below :func:`data_root`, e.g. ``data_path("hpatches-dev")``."""
    return data_root().joinpath(*parts)
