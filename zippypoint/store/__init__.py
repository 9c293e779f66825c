"""Feature and match stores on disk.

``zippypoint.store.hloc`` writes and reads the HDF5 layout of the hloc localisation toolbox
(features.h5 / matches.h5). h5py is imported only when a store function runs.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "write_features": "zippypoint.store.hloc",
    "read_features": "zippypoint.store.hloc",
    "list_names": "zippypoint.store.hloc",
    "write_matches": "zippypoint.store.hloc",
    "read_matches": "zippypoint.store.hloc",
    "names_to_pair": "zippypoint.store.hloc",
    "unpack_to_float": "zippypoint.store.hloc",
    "image_name": "zippypoint.store.hloc",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zippypoint.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
