"""The fixed development split of a photo folder: photos held out of training for model selection.

A photo belongs to the development split when the sha256 of its file name (the name alone, not the
folder, so the split survives moving the data) falls in the first ``DEV_PERMILLE`` of 1000 buckets.
Training excludes these photos by default and ``zippypoint make-benchmark --held-out`` builds the
development benchmarks from them, so model selection never looks at a training photo.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

DEV_PERMILLE = 100  # about 10 % of the photos


def is_dev_photo(path: str | Path) -> bool:
    """True when the photo is in the held-out development split (decided by its file name only)."""
    digest = hashlib.sha256(Path(path).name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < DEV_PERMILLE


def split_dev(paths) -> tuple[list[Path], list[Path]]:
    """(training photos, development photos), each in the input order."""
    train, dev = [], []
    for p in paths:
        (dev if is_dev_photo(p) else train).append(Path(p))
    return train, dev
