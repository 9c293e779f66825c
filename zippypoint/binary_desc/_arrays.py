"""Array conversion shared by the numpy-only binary descriptor modules.

Torch tensors are accepted wherever a numpy array is, but torch is never imported here:
a tensor can only exist if its caller already imported torch, so ``sys.modules`` is enough.
"""

from __future__ import annotations

import sys

import numpy as np


def is_torch_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_numpy(x: object, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array (tensors are detached and copied to the CPU)."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch_tensor(x):
        return x.detach().cpu().numpy()
    raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")


def as_packed_descriptors(x: object, name: str) -> np.ndarray:
    """Validate packed binary descriptors: a C-contiguous uint8 array [N, B] with B >= 1."""
    arr = as_numpy(x, name)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8 (packed bits), got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected shape [N, B] with B >= 1 bytes, got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr)


def check_same_width(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same byte width, got {a.shape[1]} and {b.shape[1]}"
        )
