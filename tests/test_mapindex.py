"""Large-map matching with faiss binary indexes: exactness of the flat index, recall of the approximate ones,
the ratio test over map ids, persistence, and empty input (small maps; speed lives in benchmarks/)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from zippypoint.mapindex import (  # noqa: E402
    BinaryMapIndex,
    MapIndexConfig,
    default_nlist,
    pack_ids,
    random_descriptors,
    recall_at_1,
    unpack_ids,
)

N_MAP, N_QUERY, FLIPS = 20_000, 300, 6


def _perturbed(descriptors: np.ndarray, flips: int, seed: int) -> np.ndarray:
    """Copies with ``flips`` ones moved to zero positions: still exactly 64 ones, ``2 * flips`` bits away."""
    rng = np.random.default_rng(seed)
    bits = np.unpackbits(descriptors, axis=1, bitorder="little")
    for row in bits:
        on, off = np.flatnonzero(row), np.flatnonzero(row == 0)
        row[rng.choice(on, flips, replace=False)] = 0
        row[rng.choice(off, flips, replace=False)] = 1
    return np.packbits(bits, axis=1, bitorder="little")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """faiss's OpenMP threads stall when the CPU is shared; one thread keeps the tests quick everywhere."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    db = random_descriptors(N_MAP, seed=1)
    truth = np.random.default_rng(2).choice(N_MAP, N_QUERY, replace=False)
    queries = _perturbed(db[truth], FLIPS, seed=3)
    return db, queries, truth


@pytest.fixture(scope="module")
def exact(data):
    db, queries, _ = data
    return BinaryMapIndex(kind="flat").build(db).search(queries, k=2)


def _brute_force(db, queries):
    a = np.unpackbits(queries, axis=1).astype(np.int32)
    b = np.unpackbits(db, axis=1).astype(np.int32)
    d = a.sum(1)[:, None] + b.sum(1)[None] - 2 * a @ b.T
    return d


def test_random_descriptors_have_64_ones_and_are_seeded():
    d = random_descriptors(1000, seed=5)
    assert d.shape == (1000, 32) and d.dtype == np.uint8
    assert np.all(np.unpackbits(d, axis=1).sum(1) == 64)
    np.testing.assert_array_equal(d, random_descriptors(1000, seed=5))
    assert len(np.unique(d, axis=0)) == 1000


def test_flat_equals_brute_force(data, exact):
    db, queries, truth = data
    distances, ids = exact
    d = _brute_force(db[:5000], queries[:50])
    small = BinaryMapIndex(kind="flat").build(db[:5000]).search(queries[:50], k=2)[0]
    np.testing.assert_array_equal(small[:, 0], d.min(1))
    assert np.all(ids[:, 0] == truth)  # 12 bits away from their source, random others are ~96 away
    assert np.all(distances[:, 0] == 2 * FLIPS)


@pytest.mark.parametrize("kind, params, floor", [
    ("ivf", {"nlist": 64, "nprobe": 64}, 1.0),  # every list probed: exact
    ("ivf", {"nlist": 64, "nprobe": 8}, 0.05),
    ("hnsw", {"hnsw_m": 16, "ef_search": 128}, 0.5),
    ("multihash", {"nhash": 8, "hash_bits": 32, "nflip": 1}, 1.0),  # 12 flips over 8 tables: one has <= 1
])
def test_approximate_indexes_recall(data, exact, kind, params, floor):
    db, queries, _ = data
    index = BinaryMapIndex(MapIndexConfig(kind=kind, **params)).build(db)
    assert len(index) == N_MAP and index.memory_bytes() > 0
    distances, ids = index.search(queries, k=2)
    assert distances.dtype == np.int32 and ids.dtype == np.int64 and ids.shape == (N_QUERY, 2)
    assert recall_at_1(distances, exact[0]) >= floor


def test_more_probes_never_lower_ivf_recall(data, exact):
    db, queries, _ = data
    index = BinaryMapIndex(kind="ivf", nlist=64, nprobe=1).build(db)
    recalls = []
    for nprobe in (1, 4, 16, 64):
        recalls.append(recall_at_1(index.set_search_params(nprobe=nprobe).search(queries)[0], exact[0]))
    assert recalls == sorted(recalls) and recalls[-1] == 1.0


def test_ratio_test_ignores_other_descriptors_of_the_same_point():
    base = random_descriptors(3, seed=9)
    twin = _perturbed(base[:1], 1, seed=4)  # the same 3D point seen in another image, 2 bits away
    query = _perturbed(base[:1], 1, seed=5)  # 2 bits from base[0], 2 or 4 from the twin
    index = BinaryMapIndex(kind="flat").build(np.concatenate([base, twin]), ids=np.array([10, 11, 12, 10]))
    assert index.match(query, ratio=0.4).tolist() == [[0, 10]]  # the rival is another point ~96 bits away
    other = BinaryMapIndex(kind="flat").build(np.concatenate([base, twin]), ids=np.array([10, 11, 12, 13]))
    assert other.match(query, ratio=0.4).shape == (0, 2)  # a different point as near: ambiguous
    assert len(other.match(query, ratio=None)) == 1


def test_empty_map_and_empty_queries():
    empty = BinaryMapIndex(kind="flat").build(np.zeros((0, 32), np.uint8))
    d, i = empty.search(random_descriptors(2), k=2)
    assert np.all(i == -1) and np.all(d == 257)
    assert empty.match(random_descriptors(2)).shape == (0, 2)
    full = BinaryMapIndex(kind="hnsw").build(random_descriptors(100))
    d, i = full.search(np.zeros((0, 32), np.uint8))
    assert d.shape == (0, 2) and i.shape == (0, 2)
    assert full.match(np.zeros((0, 32), np.uint8)).shape == (0, 2)


def test_save_and_load(tmp_path, data):
    db, queries, _ = data
    index = BinaryMapIndex(kind="ivf", nlist=32, nprobe=4).build(db[:5000], ids=np.arange(5000) * 7)
    path = index.save(tmp_path / "map.faissb")
    back = BinaryMapIndex.load(path, MapIndexConfig(kind="ivf", nprobe=4))
    for got, want in zip(back.search(queries), index.search(queries), strict=True):
        np.testing.assert_array_equal(got, want)


def test_image_to_database_ids_round_trip():
    ids = pack_ids(np.array([0, 3, 70000]), np.array([5, 0, 4095]))
    image, keypoint = unpack_ids(ids)
    assert image.tolist() == [0, 3, 70000] and keypoint.tolist() == [5, 0, 4095]


def test_validation():
    with pytest.raises(ValueError, match="kind"):
        MapIndexConfig(kind="lsh")
    with pytest.raises(ValueError, match="nhash"):
        MapIndexConfig(kind="multihash", nhash=16, hash_bits=32)
    with pytest.raises(RuntimeError, match="build"):
        BinaryMapIndex(kind="flat").search(random_descriptors(1))
    with pytest.raises(ValueError, match="ids"):
        BinaryMapIndex(kind="flat").build(random_descriptors(3), ids=np.arange(2))
    with pytest.raises(ValueError, match="bits"):
        BinaryMapIndex(kind="flat").build(random_descriptors(3)).search(np.zeros((1, 16), np.uint8))
    with pytest.raises(TypeError):
        BinaryMapIndex(kind="flat").build(np.zeros((3, 32), np.float32))
    assert default_nlist(10**6) == 1024 and default_nlist(1) >= 1
