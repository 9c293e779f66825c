"""Lazy public names for packages: ``__getattr__`` and ``__dir__`` that import a submodule on first use.

    _LAZY = {"OnnxExtractor": "zippypoint.runtime.onnx_extractor"}
    __all__ = list(_LAZY)
    __getattr__, __dir__ = lazy_names(__name__, _LAZY)

So that importing a package never imports torch, OpenCV or ONNX Runtime until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_names(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose attribute ``name`` is ``names[name]``'s attribute of
    the same name; unknown names raise AttributeError as for any module."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *names})

    return __getattr__, __dir__
