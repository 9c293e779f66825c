"""zippypoint: fast keypoint detection and 256-bit binary description.

Importing this package has no side effects and does not import torch: the torch-free
deployment runtime (``zippypoint.runtime``) must work where torch is not installed.
Heavy names are resolved lazily on first attribute access.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__version__ = "0.1.0"

_LAZY = {
    "create_model": "zippypoint.model.registry",
    "list_models": "zippypoint.model.registry",
    "get_preset": "zippypoint.model.registry",
    "Extractor": "zippypoint.extractor",
    "ExtractorConfig": "zippypoint.extractor",
    "match_hamming": "zippypoint.binary_desc.matcher",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
