"""Binary descriptors: LML relaxation, top-k binarisation, bit packing and Hamming matching.

Names are resolved lazily so that importing this package, or its numpy-only modules
(``binarize``, ``packing``, ``hamming``, ``matcher``), never imports torch; only ``lml`` needs it.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

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

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
