"""zippypoint: fast keypoint detection and 256-bit binary description.

Importing this package has no side effects and does not import torch: the torch-free
deployment runtime (``zippypoint.runtime``) must work where torch is not installed.
Heavy names are resolved lazily on first attribute access.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__version__ = "0.1.0"

__all__, __getattr__, __dir__ = lazy_names(__name__, {
    "zippypoint.model.registry": ("create_model", "list_models", "get_preset"),
    "zippypoint.extractor": ("Extractor", "ExtractorConfig"),
    "zippypoint.binary_desc.matcher": ("match_hamming",),
})

__all__ = ["__version__", *__all__]
