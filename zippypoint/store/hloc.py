"""Features and matches in the HDF5 layout of hloc (features.h5 / matches.h5).

features.h5 holds one group per image name; a name with ``/`` becomes nested groups
(``seq/0001.jpg`` -> group ``seq`` -> group ``0001.jpg``), exactly as hloc writes them. Each group has:

- ``keypoints``   float32 [N, 2]  x, y in pixels; the centre of the top-left pixel is (0, 0)
  (hloc's convention too: it adds 0.5 itself when it hands keypoints to COLMAP).
- ``scores``      float32 [N]     sorted descending.
- ``descriptors`` [D, N]          transposed, as hloc stores them. Float descriptors are float32
  [D, N]. Packed binary descriptors stay packed: uint8 [B, N] (B = 32 bytes for 256 bits), with
  attributes ``descriptor_kind = "binary"``, ``descriptor_bits = 8 * B`` and ``bit_order =
  "lsb-first"``: bit ``j`` of keypoint ``i`` is ``(descriptors[j // 8, i] >> (j % 8)) & 1``.
  Float pipelines that cannot read packed bits use :func:`unpack_to_float` first.
  With ``binary_as_float`` the bits are stored as float16 [8B, N] unit +-1 vectors instead
  (``descriptor_kind = "binary-as-float"``), readable by float-only matchers.
- ``image_size``  int64 [2]       (width, height) of the image the keypoints refer to.

matches.h5 holds one group per pair, named by :func:`names_to_pair` (``name0/name1`` with any
``/`` inside a name replaced by ``-``), with ``matches0`` int32 [N0] (index into image 1's
keypoints, ``-1`` = unmatched) and ``matching_scores0`` float32 [N0].
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

BIT_ORDER = "lsb-first"


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # the optional `sfm` extra
        raise ImportError("the hloc store needs h5py: pip install 'zippypoint[sfm]'") from exc
    return h5py


@contextmanager
def _new_group(h5_path: str | Path, name: str) -> Iterator:
    """Group ``name`` of the HDF5 file (created if missing), made anew: an old group of that name is deleted."""
    with _h5py().File(str(h5_path), "a") as f:
        if name in f:
            del f[name]
        yield f.create_group(name)


def _check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a str, got {type(name).__name__}")
    clean = name.strip("/")
    if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
        raise ValueError(f"{what}: expected a relative image name like 'dir/img.jpg', got {name!r}")
    return clean


def names_to_pair(name0: str, name1: str, separator: str = "/") -> str:
    """hloc's key of a pair in matches.h5: ``name0/name1`` with '/' inside the names replaced by '-'."""
    return separator.join((_check_name(name0, "name0").replace("/", "-"),
                           _check_name(name1, "name1").replace("/", "-")))


def write_features(h5_path: str | Path, name: str, features: dict, image_size: tuple[int, int], *,
                   binary_as_float: bool = False) -> None:
    """Add (or replace) the features of image ``name`` in ``h5_path`` (created if missing).

    ``features``: keypoints [N,2], scores [N], descriptors [N,D] (uint8 packed bits or float);
    ``image_size``: (width, height). ``binary_as_float``: store packed bits as the unit +-1 vectors of
    :func:`unpack_to_float` (float16 [8B, N], exact; 16x larger) for pipelines that only read float
    descriptors (hloc's nearest-neighbour matcher then ranks exactly as Hamming would).
    """
    name = _check_name(name)
    kpts = np.asarray(features["keypoints"], dtype=np.float32)
    if kpts.ndim != 2 or kpts.shape[1] != 2:
        raise ValueError(f"keypoints: expected shape [N, 2], got {kpts.shape}")
    n = kpts.shape[0]
    scores = np.asarray(features.get("scores", np.ones(n)), dtype=np.float32).reshape(-1)
    if scores.shape[0] != n:
        raise ValueError(f"scores: expected {n} values (one per keypoint), got {scores.shape[0]}")
    desc = np.asarray(features["descriptors"])
    if desc.ndim != 2 or desc.shape[0] != n:
        raise ValueError(f"descriptors: expected shape [{n}, D], got {desc.shape}")
    binary = desc.dtype == np.uint8
    as_float = binary and binary_as_float
    if as_float:
        desc = unpack_to_float(desc).astype(np.float16)
        binary = False
    elif not binary:
        desc = desc.astype(np.float32, copy=False)
    size = np.asarray(image_size, dtype=np.int64).reshape(-1)
    if size.shape != (2,) or (size <= 0).any():
        raise ValueError(f"image_size: expected (width, height) > 0, got {image_size!r}")
    with _new_group(h5_path, name) as grp:
        grp.create_dataset("keypoints", data=kpts)
        grp.create_dataset("scores", data=scores)
        ds = grp.create_dataset("descriptors", data=np.ascontiguousarray(desc.T))
        if binary:
            ds.attrs["descriptor_kind"] = "binary"
            ds.attrs["descriptor_bits"] = 8 * desc.shape[1]
            ds.attrs["bit_order"] = BIT_ORDER
        else:
            ds.attrs["descriptor_kind"] = "binary-as-float" if as_float else "float"
        grp.create_dataset("image_size", data=size)


def read_features(h5_path: str | Path, name: str) -> dict:
    """Features of image ``name``: keypoints [N,2], scores [N], descriptors [N,D], image_size (w, h)."""
    name = _check_name(name)
    h5py = _h5py()
    with h5py.File(str(h5_path), "r") as f:
        if name not in f or "keypoints" not in f[name]:
            raise KeyError(f"{h5_path}: no features for image {name!r}")
        grp = f[name]
        out = {"keypoints": grp["keypoints"][()].astype(np.float32, copy=False).reshape(-1, 2)}
        n = out["keypoints"].shape[0]
        out["scores"] = grp["scores"][()].astype(np.float32, copy=False) if "scores" in grp else np.ones(n, np.float32)
        if "descriptors" in grp:
            desc = grp["descriptors"][()]
            out["descriptors"] = np.ascontiguousarray(desc.T) if desc.ndim == 2 else desc.reshape(n, -1)
        if "image_size" in grp:
            out["image_size"] = tuple(int(v) for v in grp["image_size"][()])
    return out


def list_names(h5_path: str | Path) -> list[str]:
    """Image names (sorted) that have features in ``h5_path``; nested groups give 'dir/img.jpg'."""
    h5py = _h5py()
    names: list[str] = []
    with h5py.File(str(h5_path), "r") as f:
        def visit(path, obj):
            if isinstance(obj, h5py.Group) and isinstance(obj.get("keypoints"), h5py.Dataset):
                names.append(path)
        f.visititems(visit)
    return sorted(names)


def write_matches(h5_path: str | Path, name0: str, name1: str, matches, scores=None,
                  num_keypoints0: int | None = None) -> None:
    """Add (or replace) the matches of a pair. ``matches``: int [M,2] (index in image 0, index in image 1);
    ``scores``: [M] or None (then 1.0); ``num_keypoints0``: length of ``matches0`` (default: the largest
    matched index + 1; hloc readers only use the entries that are not -1)."""
    m = np.asarray(matches, dtype=np.int64)
    if m.size == 0:
        m = m.reshape(0, 2)
    if m.ndim != 2 or m.shape[1] != 2:
        raise ValueError(f"matches: expected shape [M, 2], got {m.shape}")
    if (m < 0).any():
        raise ValueError("matches: indices must be >= 0 (unmatched keypoints are simply left out)")
    if len(np.unique(m[:, 0])) != len(m):
        raise ValueError("matches: a keypoint of image 0 appears in more than one match")
    s = np.ones(len(m), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
    if s.shape[0] != len(m):
        raise ValueError(f"scores: expected {len(m)} values (one per match), got {s.shape[0]}")
    n0 = int(m[:, 0].max()) + 1 if len(m) else 0
    if num_keypoints0 is not None:
        if num_keypoints0 < n0:
            raise ValueError(f"num_keypoints0={num_keypoints0} but a match uses keypoint {n0 - 1}")
        n0 = int(num_keypoints0)
    matches0 = np.full(n0, -1, np.int32)
    scores0 = np.zeros(n0, np.float32)
    matches0[m[:, 0]] = m[:, 1]
    scores0[m[:, 0]] = s
    pair = names_to_pair(name0, name1)
    with _new_group(h5_path, pair) as grp:
        grp.create_dataset("matches0", data=matches0)
        grp.create_dataset("matching_scores0", data=scores0)


def read_matches(h5_path: str | Path, name0: str, name1: str) -> tuple[np.ndarray, np.ndarray]:
    """Matches of a pair as (int64 [M,2], float32 [M]); a pair stored the other way round (or under
    hloc's old '_' separator) is found and flipped, as hloc does."""
    h5py = _h5py()
    candidates = [(names_to_pair(a, b, sep), flip) for sep in ("/", "_")
                  for a, b, flip in ((name0, name1, False), (name1, name0, True))]
    with h5py.File(str(h5_path), "r") as f:
        found = [(key, flip) for key, flip in candidates if key in f and "matches0" in f[key]]
        if not found:
            raise KeyError(f"{h5_path}: no matches for pair ({name0!r}, {name1!r})")
        key, flipped = found[0]
        matches0 = f[key]["matches0"][()]
        scores0 = f[key]["matching_scores0"][()] if "matching_scores0" in f[key] else None
    idx = np.flatnonzero(matches0 != -1)
    pairs = np.stack([idx, matches0[idx]], axis=1).astype(np.int64)
    scores = (scores0[idx] if scores0 is not None else np.ones(len(idx))).astype(np.float32)
    if flipped:
        pairs = pairs[:, ::-1].copy()
    return pairs.reshape(-1, 2), scores


def unpack_to_float(descriptors, normalize: bool = True) -> np.ndarray:
    """Packed binary descriptors uint8 [N,B] -> float32 [N, 8B] of +-1 (bit 1 -> +1, bit 0 -> -1).

    For +-1 vectors, squared L2 distance = 4 x Hamming distance and the dot product = 8B - 2 x Hamming,
    so float nearest-neighbour matchers rank candidates exactly as the Hamming matcher does. With
    ``normalize`` the vectors have unit norm (+-1/sqrt(8B)), which is what dot-product matchers such as
    hloc's nearest-neighbour matcher expect.
    """
    from zippypoint.binary_desc.packing import unpack_bits

    bits = unpack_bits(descriptors)
    out = np.where(bits, np.float32(1.0), np.float32(-1.0))
    if normalize and out.shape[1]:
        out /= np.float32(np.sqrt(out.shape[1]))
    return out


def image_name(path: str | Path, roots: list[str | Path]) -> str:
    """hloc's name of an image: its path relative to the first of ``roots`` (folders) that contains it,
    with '/' separators; an image outside every folder is named by its file name."""
    path = Path(os.path.abspath(path))  # not resolve(): a symlinked image keeps the name it has here
    for root in roots:
        root = Path(os.path.abspath(root))
        if root.is_dir() and root in path.parents:
            return path.relative_to(root).as_posix()
    return path.name
