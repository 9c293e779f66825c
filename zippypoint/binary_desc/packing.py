"""Packing 0/1 descriptor bits into bytes and back (numpy only).

Bit order: bit ``j`` of a descriptor is ``(packed[j // 8] >> (j % 8)) & 1``, i.e. least significant
bit first within each byte, the same as ``np.packbits(..., bitorder="little")``. A 256-bit
descriptor packs into 32 bytes.
"""

from __future__ import annotations

import numpy as np

from zippypoint.binary_desc._arrays import as_numpy, as_packed_descriptors


def pack_bits(bits: object) -> np.ndarray:
    """Pack 0/1 bits [N, D] (bool or integer, D a multiple of 8) into uint8 [N, D // 8].

    Torch tensors are accepted and copied to the CPU.
    """
    arr = as_numpy(bits, "bits")
    if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"bits: expected a bool or integer dtype, got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[1] % 8 != 0:
        raise ValueError(
            f"bits: expected shape [N, D] with D a positive multiple of 8, got {tuple(arr.shape)}"
        )
    if arr.dtype != np.bool_ and arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"bits: expected values in {{0, 1}}, got range [{arr.min()}, {arr.max()}]")
    return np.packbits(arr.astype(np.bool_, copy=False), axis=1, bitorder="little")


def unpack_bits(packed: object) -> np.ndarray:
    """Unpack uint8 [N, B] into bool bits [N, 8 * B] (inverse of ``pack_bits``)."""
    arr = as_packed_descriptors(packed, "packed")
    return np.unpackbits(arr, axis=1, bitorder="little").view(np.bool_)
