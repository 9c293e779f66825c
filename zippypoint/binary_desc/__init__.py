"""Binary descriptors: LML relaxation, top-k binarisation, bit packing and Hamming matching.

Names are resolved lazily so that importing this package, or its numpy-only modules
(``binarize``, ``packing``, ``hamming``, ``matcher``), never imports torch; only ``lml`` needs it.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__all__, __getattr__, __dir__ = lazy_names(__name__, {
    "zippypoint.binary_desc.lml": ("lml_projection",),
    "zippypoint.binary_desc.binarize": ("topk_binarize",),
    "zippypoint.binary_desc.packing": ("pack_bits", "unpack_bits"),
    "zippypoint.binary_desc.hamming": ("hamming_distance_matrix",),
    "zippypoint.binary_desc.matcher": ("match_hamming", "faiss_available"),
})
