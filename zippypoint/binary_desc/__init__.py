"""Binary descriptors: LML relaxation, top-k binarisation, bit packing and Hamming matching.

Names are resolved lazily so that importing this package, or its numpy-only modules
(``binarize``, ``packing``, ``hamming``, ``matcher``), never imports torch; only ``lml`` needs it.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "lml_projection": "zippypoint.binary_desc.lml",
    "topk_binarize": "zippypoint.binary_desc.binarize",
    "pack_bits": "zippypoint.binary_desc.packing",
    "unpack_bits": "zippypoint.binary_desc.packing",
    "hamming_distance_matrix": "zippypoint.binary_desc.hamming",
    "match_hamming": "zippypoint.binary_desc.matcher",
    "faiss_available": "zippypoint.binary_desc.matcher",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zippypoint.binary_desc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
