"""hloc-layout feature and match store: round trips, layout details, bad input."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from zippypoint.binary_desc.packing import unpack_bits  # noqa: E402
from zippypoint.store.hloc import (  # noqa: E402
    list_names,
    names_to_pair,
    read_features,
    read_matches,
    unpack_to_float,
    write_features,
    write_matches,
)


def _features(n, rng, binary=True):
    desc = rng.integers(0, 256, (n, 32), dtype=np.uint8) if binary else rng.normal(size=(n, 128)).astype(np.float32)
    return {"keypoints": rng.uniform(0, 100, (n, 2)).astype(np.float32),
            "scores": np.sort(rng.uniform(size=n).astype(np.float32))[::-1], "descriptors": desc}


def test_features_round_trip_nested_names_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "features.h5"
    feats = {"a.jpg": _features(7, rng), "seq/b.jpg": _features(0, rng), "seq/c.png": _features(3, rng, False)}
    for name, f in feats.items():
        write_features(path, name, f, (416, 128))
    assert list_names(path) == sorted(feats)
    for name, f in feats.items():
        back = read_features(path, name)
        np.testing.assert_array_equal(back["keypoints"], f["keypoints"])
        np.testing.assert_array_equal(back["scores"], f["scores"])
        np.testing.assert_array_equal(back["descriptors"], f["descriptors"])
        assert back["descriptors"].dtype == f["descriptors"].dtype
        assert back["image_size"] == (416, 128)
    with h5py.File(path, "r") as f:  # hloc's own layout: nested groups, descriptors [D, N]
        ds = f["seq"]["c.png"]["descriptors"]
        assert ds.shape == (128, 3)
        packed = f["a.jpg"]["descriptors"]
        assert packed.shape == (32, 7) and packed.dtype == np.uint8
        assert packed.attrs["bit_order"] == "lsb-first" and packed.attrs["descriptor_bits"] == 256
        j, i = 77, 4  # the documented bit order
        assert ((packed[j // 8, i] >> (j % 8)) & 1) == unpack_bits(feats["a.jpg"]["descriptors"])[i, j]


def test_rewrite_replaces_group(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "f.h5"
    write_features(path, "x.jpg", _features(5, rng), (10, 10))
    write_features(path, "x.jpg", _features(2, rng), (10, 10))
    assert read_features(path, "x.jpg")["keypoints"].shape == (2, 2)


def test_matches_round_trip_pair_names_and_flip(tmp_path):
    path = tmp_path / "matches.h5"
    m = np.array([[0, 3], [2, 1], [5, 0]])
    write_matches(path, "seq/a.jpg", "seq/b.jpg", m, scores=[0.9, 0.5, 0.1], num_keypoints0=8)
    with h5py.File(path, "r") as f:
        grp = f["seq-a.jpg"]["seq-b.jpg"]
        np.testing.assert_array_equal(grp["matches0"][()], [3, -1, 1, -1, -1, 0, -1, -1])
        assert grp["matching_scores0"].shape == (8,)
    got, scores = read_matches(path, "seq/a.jpg", "seq/b.jpg")
    np.testing.assert_array_equal(got, m)
    np.testing.assert_allclose(scores, [0.9, 0.5, 0.1])
    flipped, _ = read_matches(path, "seq/b.jpg", "seq/a.jpg")
    np.testing.assert_array_equal(flipped, m[:, ::-1])
    assert names_to_pair("seq/a.jpg", "b.jpg") == "seq-a.jpg/b.jpg"
    write_matches(path, "e0.jpg", "e1.jpg", np.zeros((0, 2), np.int64))
    got, scores = read_matches(path, "e0.jpg", "e1.jpg")
    assert got.shape == (0, 2) and scores.shape == (0,)


def test_bad_input(tmp_path):
    path = tmp_path / "f.h5"
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="keypoints"):
        write_features(path, "a.jpg", {"keypoints": np.zeros((3, 3)), "descriptors": np.zeros((3, 32), np.uint8)},
                       (5, 5))
    with pytest.raises(ValueError, match="image_size"):
        write_features(path, "a.jpg", _features(2, rng), (0, 5))
    with pytest.raises(ValueError, match="name"):
        write_features(path, "../a.jpg", _features(2, rng), (5, 5))
    with pytest.raises(ValueError, match="more than one"):
        write_matches(path, "a", "b", [[0, 1], [0, 2]])
    write_features(path, "a.jpg", _features(2, rng), (5, 5))
    with pytest.raises(KeyError, match="nope"):
        read_features(path, "nope.jpg")
    with pytest.raises(KeyError, match="no matches"):
        read_matches(path, "a.jpg", "b.jpg")


def test_unpack_to_float_orders_like_hamming():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    ham = (unpack_bits(a)[:, None, :] != unpack_bits(b)[None, :, :]).sum(-1)
    fa, fb = unpack_to_float(a, normalize=False), unpack_to_float(b, normalize=False)
    l2 = ((fa[:, None] - fb[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(l2, 4 * ham)
    unit = unpack_to_float(a)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    assert unpack_to_float(np.zeros((0, 32), np.uint8)).shape == (0, 256)


def test_extract_format_h5_writes_hloc_layout(shared_data, tmp_path):
    from zippypoint.cli import main

    kitti = shared_data / "kitti-0001"
    if not kitti.is_dir():
        pytest.skip(f"KITTI frames not found in {kitti}")
    images = tmp_path / "images" / "seq"
    images.mkdir(parents=True)
    for i in range(2):
        (images / f"{i:010d}.jpg").symlink_to(kitti / f"{i:010d}.jpg")
    out = tmp_path / "out"
    assert main(["extract", str(tmp_path / "images"), "--out", str(out), "--format", "h5",
                 "--runtime", "onnx-int8", "--max-keypoints", "300"]) == 0
    assert list_names(out / "features.h5") == ["seq/0000000000.jpg", "seq/0000000001.jpg"]
    f = read_features(out / "features.h5", "seq/0000000001.jpg")
    assert f["image_size"] == (416, 128)
    n = len(f["scores"])
    assert 0 < n <= 300 and f["descriptors"].shape == (n, 32) and f["descriptors"].dtype == np.uint8
    assert (unpack_bits(f["descriptors"]).sum(1) == 64).all()
    assert (np.diff(f["scores"]) <= 0).all()


def test_binary_as_float_store_keeps_hamming_order(tmp_path):
    rng = np.random.default_rng(5)
    f = _features(9, rng)
    write_features(tmp_path / "f.h5", "a.jpg", f, (20, 20), binary_as_float=True)
    with h5py.File(tmp_path / "f.h5", "r") as h:
        ds = h["a.jpg"]["descriptors"]
        assert ds.shape == (256, 9) and ds.dtype == np.float16 and ds.attrs["descriptor_kind"] == "binary-as-float"
    back = read_features(tmp_path / "f.h5", "a.jpg")["descriptors"].astype(np.float32)
    np.testing.assert_array_equal(back, unpack_to_float(f["descriptors"]))  # exact in float16
