"""Matching packed binary descriptors against a large map (millions of descriptors) with faiss binary indexes.

A map is any set of 256-bit descriptors with one integer id each: a 3D point id for 2D-3D matching (a point
seen in several images contributes several descriptors with the same id), or ``image * 2**32 + keypoint`` for
image-to-database matching (``pack_ids`` / ``unpack_ids``). Index kinds (``BinaryMapIndex(MapIndexConfig(kind))``):

- ``flat``: exhaustive Hamming search (``faiss.IndexBinaryFlat``); exact, cost linear in the map;
- ``ivf``: inverted lists over ``nlist`` binary centroids, ``nprobe`` lists searched (``IndexBinaryIVF``);
- ``hnsw``: a navigable small-world graph (``IndexBinaryHNSW``); fast queries, slow to build;
- ``multihash``: exact probing of ``nhash`` hash tables of ``hash_bits``-bit substrings with up to ``nflip``
  flipped bits (``IndexBinaryMultiHash``); finds only neighbours within that Hamming radius.
Approximate indexes are judged by recall@1 against ``flat`` (``recall_at_1``): a query counts as found when the
approximate nearest neighbour is at the exact nearest distance (ties are equally good).
Matching (``match``) keeps the nearest map entry of each query when Lowe's ratio test on the two nearest
*different ids* passes (two descriptors of the same 3D point are not rivals). Nothing is loaded by constructors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.binary_desc._arrays import as_packed_descriptors

KINDS = ("flat", "ivf", "hnsw", "multihash")


@dataclass(frozen=True)
class MapIndexConfig:
    kind: str = "ivf"  # flat, ivf, hnsw or multihash (see the module docstring)
    nlist: int | None = None  # IVF lists; None = about sqrt(N), a power of two (default_nlist)
    nprobe: int = 16  # IVF lists searched per query
    train_size: int = 65536  # IVF: descriptors sampled (seeded) to train the centroids
    hnsw_m: int = 16  # HNSW: neighbours per node
    ef_construction: int = 40  # HNSW: candidate list while building
    ef_search: int = 64  # HNSW: candidate list while searching
    nhash: int = 8  # multi-hash: hash tables
    hash_bits: int = 32  # multi-hash: bits per table (nhash * hash_bits <= 256)
    nflip: int = 2  # multi-hash: bits flipped when probing
    seed: int = 0  # IVF training sample

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for field in ("nprobe", "train_size", "hnsw_m", "ef_construction", "ef_search", "nhash", "hash_bits"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError(f"nlist must be >= 1 or None, got {self.nlist}")
        if self.nhash * self.hash_bits > 256:
            raise ValueError(f"nhash * hash_bits must be <= 256, got {self.nhash} * {self.hash_bits}")
        if self.nflip < 0:
            raise ValueError(f"nflip must be >= 0, got {self.nflip}")


def default_nlist(n: int) -> int:
    """About sqrt(N) lists (a power of two, at most 65536): ~sqrt(N) descriptors per list."""
    return int(min(65536, max(1, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))))


def pack_ids(image_ids: np.ndarray, keypoint_ids: np.ndarray) -> np.ndarray:
    """(image, keypoint) -> one int64 id per map descriptor (image-to-database matching)."""
    return (np.asarray(image_ids, np.int64) << 32) | np.asarray(keypoint_ids, np.int64)


def unpack_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, np.int64)
    return ids >> 32, ids & 0xFFFFFFFF


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("map indexes need faiss: pip install 'zippypoint[distributed]' (faiss-cpu)") from exc
    return faiss


class BinaryMapIndex:
    """A faiss binary index over a map of packed 256-bit descriptors with one id per descriptor.

    ``build(descriptors [N, 32] uint8, ids [N] int64 = row numbers)`` fills it; ``search`` gives the k nearest
    (distance in bits, id); ``match`` the ratio-tested nearest id per query.
    """

    def __init__(self, config: MapIndexConfig | None = None, **overrides) -> None:
        if config is not None and overrides:
            raise TypeError("pass either config or keyword overrides, not both")
        self.config = config or MapIndexConfig(**overrides)
        self._index = None
        self._ids: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def _new_index(self, bits: int, n: int):
        faiss = _faiss()
        c = self.config
        if c.kind == "flat":
            return faiss.IndexBinaryFlat(bits)
        if c.kind == "hnsw":
            index = faiss.IndexBinaryHNSW(bits, c.hnsw_m)
            index.hnsw.efConstruction = c.ef_construction
            return index
        if c.kind == "multihash":
            return faiss.IndexBinaryMultiHash(bits, c.nhash, c.hash_bits)
        nlist = min(c.nlist or default_nlist(n), max(1, n))
        quantizer = faiss.IndexBinaryFlat(bits)
        index = faiss.IndexBinaryIVF(quantizer, bits, nlist)
        index.own_fields = True
        quantizer.this.disown()  # the IVF index frees its quantizer
        return index

    def build(self, descriptors, ids=None) -> BinaryMapIndex:
        """Index ``descriptors`` uint8 [N, B] (packed); ``ids`` int64 [N] (default 0..N-1). Returns self."""
        data = np.ascontiguousarray(as_packed_descriptors(descriptors, "descriptors"))
        n, width = data.shape
        if ids is None:
            ids = np.arange(n, dtype=np.int64)
        ids = np.asarray(ids)
        if ids.shape != (n,) or ids.dtype.kind not in "iu":
            raise ValueError(f"ids: expected integers of shape ({n},), got {ids.dtype} {ids.shape}")
        index = self._new_index(8 * width, n)
        if self.config.kind == "ivf" and n:
            rng = np.random.default_rng(self.config.seed)
            sample = data if n <= self.config.train_size else data[np.sort(
                rng.choice(n, self.config.train_size, replace=False))]
            index.train(sample)
        if n:
            index.add(data)
        self._apply_search_params(index)
        self._index, self._ids = index, ids.astype(np.int64, copy=False)
        return self

    def _apply_search_params(self, index) -> None:
        c = self.config
        if c.kind == "ivf":
            index.nprobe = c.nprobe
        elif c.kind == "hnsw":
            index.hnsw.efSearch = c.ef_search
        elif c.kind == "multihash":
            index.nflip = c.nflip

    def set_search_params(self, **params) -> BinaryMapIndex:
        """Change nprobe / ef_search / nflip of a built index (a new config, same map). Returns self."""
        import dataclasses

        self.config = dataclasses.replace(self.config, **params)
        if self._index is not None:
            self._apply_search_params(self._index)
        return self

    def search(self, queries, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """k nearest map entries of each query: (distances int32 [Q, k] in bits, ids int64 [Q, k]).

        Missing neighbours (a map smaller than k, or nothing within a multi-hash radius) have id -1 and
        distance ``bits + 1``.
        """
        if self._index is None:
            raise RuntimeError("the index is empty: call build() first")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = np.ascontiguousarray(as_packed_descriptors(queries, "queries"))
        bits = self._index.d
        if q.shape[1] * 8 != bits:
            raise ValueError(f"queries have {8 * q.shape[1]} bits, the map {bits}")
        if q.shape[0] == 0 or len(self) == 0:
            return np.full((q.shape[0], k), bits + 1, np.int32), np.full((q.shape[0], k), -1, np.int64)
        distances, rows = self._index.search(q, k)
        missing = rows < 0
        ids = np.where(missing, -1, self._ids[np.where(missing, 0, rows)])
        distances = np.where(missing, bits + 1, distances).astype(np.int32)
        return distances, ids

    def match(self, queries, ratio: float | None = 0.95, max_distance: int | None = None,
              k: int = 8) -> np.ndarray:
        """int64 [M, 2] (query row, map id): the nearest id of each query that passes Lowe's ratio test
        against the nearest *other* id among the ``k`` nearest entries (``ratio`` None = no test) and
        ``max_distance``. A query whose k nearest all share one id passes the test."""
        if ratio is not None and not 0 < ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1] or None, got {ratio}")
        distances, ids = self.search(queries, k)
        if len(ids) == 0:
            return np.zeros((0, 2), np.int64)
        first_id, first = ids[:, 0], distances[:, 0].astype(np.float64)
        keep = first_id >= 0
        if ratio is not None:
            other = (ids != first_id[:, None]) & (ids >= 0)
            has_other = other.any(axis=1)
            second = np.where(has_other, distances[np.arange(len(ids)), other.argmax(axis=1)], np.inf)
            keep &= first <= ratio * second
        if max_distance is not None:
            keep &= first <= max_distance
        rows = np.flatnonzero(keep)
        return np.stack([rows, first_id[rows]], axis=1).astype(np.int64)

    def memory_bytes(self) -> int:
        """Size of the serialised index (descriptors, lists or graph) plus the id table."""
        if self._index is None:
            return 0
        return int(_faiss().serialize_index_binary(self._index).nbytes + self._ids.nbytes)

    def save(self, path: str | Path) -> Path:
        """Write the index (``path``) and its ids (``path`` + ``.ids.npy``)."""
        if self._index is None:
            raise RuntimeError("nothing to save: call build() first")
        path = Path(path)
        _faiss().write_index_binary(self._index, str(path))
        np.save(path.with_name(path.name + ".ids.npy"), self._ids)
        return path

    @classmethod
    def load(cls, path: str | Path, config: MapIndexConfig) -> BinaryMapIndex:
        """Read an index written by ``save`` (``config`` gives the kind and the search parameters)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such index file: {path}")
        out = cls(config)
        out._index = _faiss().read_index_binary(str(path))
        out._ids = np.load(path.with_name(path.name + ".ids.npy"), allow_pickle=False)
        out._apply_search_params(out._index)
        return out


def recall_at_1(approx_distances: np.ndarray, exact_distances: np.ndarray) -> float:
    """Share of queries whose approximate nearest distance equals the exact one (column 0 of each)."""
    a = np.asarray(approx_distances)[:, 0]
    e = np.asarray(exact_distances)[:, 0]
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {e.shape}")
    return float(np.mean(a == e)) if len(a) else float("nan")


def random_descriptors(n: int, ones: int = 64, bits: int = 256, seed: int = 0, chunk: int = 1 << 20) -> np.ndarray:
    """``n`` packed random descriptors with exactly ``ones`` of ``bits`` bits set (uint8 [n, bits / 8]), each
    set of positions equally likely, like ours (selection sampling, one pass over the bit positions per chunk:
    10^7 descriptors take seconds and only their own 320 MB)."""
    if not 0 <= ones <= bits or bits % 8:
        raise ValueError(f"need 0 <= ones <= bits and bits a multiple of 8, got ones={ones}, bits={bits}")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, bits // 8), np.uint8)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        needed = np.full(stop - start, ones, np.float32)
        for j in range(bits):
            # position j is set with probability (ones still needed) / (positions left)
            bit = rng.random(stop - start, dtype=np.float32) * np.float32(bits - j) < needed
            needed -= bit
            out[start:stop, j // 8] |= bit.astype(np.uint8) << np.uint8(j % 8)
    return out
