"""Lazy public names for packages: ``__all__``, ``__getattr__`` and ``__dir__`` that import a submodule on first use.

    __all__, __getattr__, __dir__ = lazy_names(__name__, {
        "zippypoint.runtime.onnx_extractor": ("OnnxExtractor",),
    })

So that importing a package never imports torch, OpenCV or ONNX Runtime until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def lazy_names(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``, whose attribute ``name`` listed under a module in
    ``modules`` is that module's attribute of the same name; unknown names raise AttributeError as for any
    module."""
    names = {name: module for module, listed in modules.items() for name in listed}

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *names})

    return list(names), __getattr__, __dir__
