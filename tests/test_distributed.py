"""Distributed extraction and matching on a real Ray: a local instance and a two-node cluster on this machine.

The reference is the single-process CLI (`zippypoint extract --runtime onnx-int8` on the same exported model,
then the Hamming matcher): the distributed outputs must equal it exactly. A worker killed mid-run must leave
nothing half-written, and the re-run must end with every image exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from conftest import SHARED_DATA, requires_weights  # noqa: E402

from zippypoint.binary_desc.matcher import match_hamming  # noqa: E402
from zippypoint.distributed.extract import ExtractionOptions, ShardExtractor, extract_collection  # noqa: E402
from zippypoint.distributed.match import MatchingOptions, match_collection, match_files  # noqa: E402
from zippypoint.distributed.pairs import exhaustive_pairs, read_pairs, sequential_pairs, write_pairs  # noqa: E402
from zippypoint.distributed.shards import check_or_write_plan, shard_ranges  # noqa: E402
from zippypoint.distributed.sources import list_images  # noqa: E402
from zippypoint.store import parquet  # noqa: E402

KITTI = SHARED_DATA / "kitti-0001"
RAY_ARGS = {"include_dashboard": False, "object_store_memory": 200 * 1024**2, "log_to_driver": False}
QUIET = {"progress": False}


# ---------------------------------------------------------------- pure parts (no Ray, no model)

def test_shards_are_fixed_by_name_order():
    assert shard_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert shard_ranges(0, 3) == []
    with pytest.raises(ValueError, match="shard_size"):
        shard_ranges(5, 0)


def test_pairs():
    names = [f"{i}.jpg" for i in range(5)]
    assert len(exhaustive_pairs(names)) == 10
    assert exhaustive_pairs(names, window=2) == sequential_pairs(names, overlap=1)
    quadratic = sequential_pairs(names + ["5.jpg", "6.jpg"], overlap=1, quadratic=True)
    assert ("0.jpg", "3.jpg") in quadratic and ("0.jpg", "5.jpg") in quadratic  # overlap + 2^k
    assert exhaustive_pairs([]) == [] and sequential_pairs(["a"]) == []
    with pytest.raises(ValueError, match="window"):
        exhaustive_pairs(names, window=1)


def test_pairs_file_round_trip(tmp_path):
    pairs = [("a/1.jpg", "b/2.jpg"), ("a/1.jpg", "c.jpg")]
    path = write_pairs(tmp_path / "pairs.txt", pairs)
    assert read_pairs(path, ["a/1.jpg", "b/2.jpg", "c.jpg"]) == pairs
    with pytest.raises(ValueError, match="no features for c.jpg"):
        read_pairs(path, ["a/1.jpg", "b/2.jpg"])


def test_sources_folder_glob_list_and_fsspec(tmp_path):
    for rel in ("b/2.jpg", "a/1.png", "a/notes.txt", "c.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    folder = [e.name for e in list_images(str(tmp_path))]
    assert folder == ["a/1.png", "b/2.jpg", "c.jpg"]
    assert [e.name for e in list_images(str(tmp_path / "*" / "*.jpg"))] == ["b/2.jpg"]
    (tmp_path / "list.txt").write_text("# images\nc.jpg\n\nb/2.jpg\n")
    listed = list_images(str(tmp_path / "list.txt"))
    assert [e.name for e in listed] == ["b/2.jpg", "c.jpg"] and Path(listed[0].path).is_file()
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    memory.pipe({"/photos/x/1.jpg": b"1", "/photos/2.jpg": b"2", "/photos/readme.md": b""})
    assert [e.name for e in list_images("/photos", filesystem=memory)] == ["2.jpg", "x/1.jpg"]
    with pytest.raises(FileNotFoundError):
        list_images(str(tmp_path / "missing"))
    (tmp_path / "twice.txt").write_text("c.jpg\nc.jpg\n")
    with pytest.raises(ValueError, match="listed twice"):
        list_images(str(tmp_path / "twice.txt"))


def test_parquet_store_round_trip_and_empty_features(tmp_path):
    rng = np.random.default_rng(0)
    feats = {"keypoints": rng.random((5, 2), dtype=np.float32) * 100,
             "scores": np.sort(rng.random(5, dtype=np.float32))[::-1].copy(),
             "descriptors": rng.integers(0, 256, (5, 32), dtype=np.uint8)}
    empty = {"keypoints": np.zeros((0, 2), np.float32), "scores": np.zeros(0, np.float32),
             "descriptors": np.zeros((0, 32), np.uint8)}
    path = parquet.write_features(tmp_path / "f.parquet", [("a/x.jpg", (640, 480), feats), ("y.jpg", (8, 8), empty)])
    back = parquet.read_features(path)
    assert list(back) == ["a/x.jpg", "y.jpg"]
    for key in ("keypoints", "scores", "descriptors"):
        assert back["a/x.jpg"][key].dtype == feats[key].dtype
        np.testing.assert_array_equal(back["a/x.jpg"][key], feats[key])
        assert back["y.jpg"][key].shape == empty[key].shape
    assert back["a/x.jpg"]["image_size"].tolist() == [640, 480]
    assert list(parquet.read_features(path, names=["y.jpg"])) == ["y.jpg"]
    m = np.array([[0, 3], [2, 1]])
    parquet.write_matches(tmp_path / "m.parquet", [("a/x.jpg", "y.jpg", m), ("y.jpg", "z", np.zeros((0, 2)))])
    got = parquet.read_matches(tmp_path / "m.parquet")
    np.testing.assert_array_equal(got[("a/x.jpg", "y.jpg")], m)
    assert got[("y.jpg", "z")].shape == (0, 2)
    assert not list(tmp_path.glob(".*partial"))
    with pytest.raises(ValueError, match="differ"):
        parquet.features_table([("bad", (1, 1), {**feats, "scores": feats["scores"][:2]})])


def test_a_different_plan_in_the_same_folder_is_refused(tmp_path):
    check_or_write_plan(tmp_path, {"images": 3, "options": {"shard_size": 2}}, "extract")
    check_or_write_plan(tmp_path, {"images": 3, "options": {"shard_size": 2}}, "extract")  # same run: fine
    with pytest.raises(ValueError, match="different extract run"):
        check_or_write_plan(tmp_path, {"images": 4, "options": {"shard_size": 2}}, "extract")


def test_an_empty_folder_is_an_empty_run(tmp_path):
    """No images: no shards, no Ray started, empty error table; matching it gives nothing."""
    from zippypoint.resolve import model_file

    try:
        model = model_file("zippypoint", "onnx-int8")
    except Exception as exc:  # noqa: BLE001 - only the packaged or cached model keeps this test quick
        pytest.skip(f"no int8 model at hand: {exc}")
    (tmp_path / "photos").mkdir()
    result = extract_collection(str(tmp_path / "photos"), tmp_path / "run", _options(model), **QUIET)
    assert (result.images, result.shards, result.extracted, result.errors) == (0, 0, 0, [])
    assert parquet.read_errors(tmp_path / "run" / "errors.parquet") == []
    matched = match_collection(tmp_path / "run", [], MatchingOptions(), **QUIET)
    assert (matched.pairs, matched.tasks) == (0, 0)


def test_options_are_validated():
    with pytest.raises(ValueError, match="runtime"):
        ExtractionOptions(runtime="torch")
    with pytest.raises(ValueError, match="workers"):
        ExtractionOptions(workers=0)
    with pytest.raises(ValueError, match="format"):
        MatchingOptions(format="csv")


# ---------------------------------------------------------------- real Ray, real photos, the shipped model

@pytest.fixture(scope="module")
def int8_model() -> Path:
    """The int8 ONNX model of the shipped weights: the packaged file (exported once and cached if it is absent)."""
    if not KITTI.is_dir():
        pytest.skip(f"real photos not found under {SHARED_DATA}")
    from conftest import shipped_weights_available

    if not shipped_weights_available():
        pytest.skip("shipped zippypoint weights not present")
    from zippypoint.resolve import model_file

    return model_file("zippypoint", "onnx-int8")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Seven real driving frames in two sub-folders, and one text file named .png (a bad image)."""
    root = tmp_path_factory.mktemp("photos")
    frames = sorted(KITTI.glob("*.jpg"))[:7] if KITTI.is_dir() else []
    if len(frames) < 7:
        pytest.skip(f"KITTI frames not found under {KITTI}")
    for i, frame in enumerate(frames):
        (root / ("seq_a" if i < 4 else "seq_b")).mkdir(exist_ok=True)
        shutil.copy(frame, root / ("seq_a" if i < 4 else "seq_b") / frame.name)
    (root / "seq_b" / "broken.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def reference(int8_model, photo_folder, tmp_path_factory) -> dict[str, dict]:
    """Features from the single-process CLI, by name relative to the folder."""
    from zippypoint.cli import main

    out = tmp_path_factory.mktemp("cli")
    code = main(["extract", str(photo_folder), "--out", str(out), "--runtime", "onnx-int8",
                 "--model", str(int8_model)])
    assert code == 1  # the broken file fails, the others are written
    ref = {}
    for path in sorted(photo_folder.rglob("*.jpg")):
        name = path.relative_to(photo_folder).as_posix()
        npz = out / Path(name).with_suffix(".npz")  # sub-folders mirrored (older CLIs: flat, by stem)
        with np.load(npz if npz.is_file() else out / f"{path.stem}.npz") as z:
            ref[name] = {k: z[k] for k in z.files}
    assert len(ref) == 7
    return ref


def _options(model: Path, **kw) -> ExtractionOptions:
    return ExtractionOptions(model=str(model), runtime="onnx-int8", **kw)


def _stored_features(out: Path) -> tuple[dict[str, dict], list[str]]:
    """All features of a run folder and the names in storage order (to see duplicates)."""
    from zippypoint.distributed.extract import feature_files
    from zippypoint.distributed.match import load_features

    names, feats = [], {}
    for path in feature_files(out):
        if path.suffix == ".parquet":
            here = parquet.read_names(path)
        else:
            from zippypoint.store.hloc import list_names

            here = list_names(path)
        names += here
        feats.update(load_features(path, here))
    return feats, names


def _assert_equal_to_reference(out: Path, ref: dict) -> None:
    feats, names = _stored_features(out)
    assert names == sorted(ref), "every image exactly once, in name order"
    for name, expected in ref.items():
        for key in ("keypoints", "scores", "descriptors"):
            np.testing.assert_array_equal(feats[name][key], expected[key], err_msg=f"{name} {key}")
        assert len(expected["scores"]) > 100


def _assert_matches_equal(out: Path, ref: dict, pairs) -> None:
    if match_files(out)[0].suffix == ".parquet":
        got = parquet.read_matches(match_files(out))
    else:
        from zippypoint.store.hloc import read_matches

        got = {(a, b): read_matches(f, a, b)[0] for f in match_files(out) for a, b in pairs
               if _has_pair(f, a, b)}
    assert sorted(got) == sorted(pairs)
    for a, b in pairs:
        expected = match_hamming(ref[a]["descriptors"], ref[b]["descriptors"])
        np.testing.assert_array_equal(got[(a, b)], expected, err_msg=f"{a} / {b}")
    assert sum(len(m) for m in got.values()) > 100


def _assert_merged_hloc(out: Path, ref: dict, pairs, tmp_path: Path) -> None:
    """`zippypoint distributed merge` gives one hloc features.h5 / matches.h5 with the same content."""
    from zippypoint.cli import main
    from zippypoint.store import hloc

    features, matches = tmp_path / "features.h5", tmp_path / "matches.h5"
    assert main(["distributed", "merge", str(out), "--features", str(features), "--matches", str(matches)]) == 0
    assert hloc.list_names(features) == sorted(ref)
    for name, expected in ref.items():
        got = hloc.read_features(features, name)
        for key in ("keypoints", "scores", "descriptors"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name} {key}")
    for a, b in pairs:
        np.testing.assert_array_equal(hloc.read_matches(matches, a, b)[0],
                                      match_hamming(ref[a]["descriptors"], ref[b]["descriptors"]))


def _has_pair(path, a, b) -> bool:
    import h5py

    from zippypoint.store.hloc import names_to_pair

    with h5py.File(path, "r") as f:
        return names_to_pair(a, b) in f


@pytest.fixture
def local_ray(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")
    ray.shutdown()
    ray.init(num_cpus=2, **RAY_ARGS)
    yield ray
    ray.shutdown()


class DiesOnceOnThirdImage(ShardExtractor):
    """Kills its own worker process at the third image it sees, the first time only (a marker file records it)."""

    marker: str = ""  # set on a subclass; the class travels to the workers by value
    seen: int = 0

    def extract_one(self, name, path):
        self.seen += 1
        if self.seen == 3 and not os.path.exists(self.marker):
            Path(self.marker).write_text(f"killed at {name}")
            os._exit(1)
        return super().extract_one(name, path)


@requires_weights
def test_local_ray_equals_single_process_and_resumes(local_ray, int8_model, photo_folder, reference, tmp_path):
    from zippypoint.cli import main

    out = tmp_path / "run"
    result = extract_collection(str(photo_folder), out, _options(int8_model, shard_size=2, workers=2), **QUIET)
    assert (result.images, result.extracted, result.failed, result.shards) == (8, 7, 1, 4)
    assert [name for name, _ in parquet.read_errors(out / "errors.parquet")] == ["seq_b/broken.png"]
    _assert_equal_to_reference(out, reference)

    pairs = sequential_pairs(sorted(reference), overlap=2)
    matched = match_collection(out, pairs, MatchingOptions(pairs_per_task=3, workers=2), **QUIET)
    assert matched.matched == len(pairs)
    _assert_matches_equal(out, reference, pairs)

    code = main(["distributed", "extract", str(photo_folder), "--out", str(out), "--model", str(int8_model),
                 "--shard-size", "2", "--workers", "1", "--quiet", "--json", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert code == 1 and again["errors"] == [["seq_b/broken.png", again["errors"][0][1]]]  # the bad file
    assert (again["extracted"], again["skipped_shards"]) == (0, 4)  # everything finished: nothing redone
    pairs_file = write_pairs(tmp_path / "pairs.txt", pairs)
    code = main(["distributed", "match", str(out), "--pairs", str(pairs_file), "--pairs-per-task", "3", "--quiet",
                 "--json", str(tmp_path / "match.json")])
    rematch = json.loads((tmp_path / "match.json").read_text())
    assert code == 0 and rematch["skipped_tasks"] == rematch["tasks"] == matched.tasks  # same plan, all done
    _assert_merged_hloc(out, reference, pairs, tmp_path)
    with pytest.raises(ValueError, match="different extract run"):
        extract_collection(str(photo_folder), out, _options(int8_model, shard_size=3), **QUIET)


@requires_weights
def test_worker_killed_mid_run_then_rerun_loses_and_duplicates_nothing(local_ray, int8_model, photo_folder,
                                                                      reference, tmp_path):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    out, marker = tmp_path / "run", tmp_path / "killed.txt"
    kwargs = dict(worker_class=type("Dies", (DiesOnceOnThirdImage,), {"marker": str(marker)}), **QUIET)
    try:
        extract_collection(str(photo_folder), out, _options(int8_model, shard_size=2, workers=2), **kwargs)
    except Exception:  # noqa: BLE001 - Ray may give up on the run or retry the shard on a restarted actor
        pass
    assert marker.is_file(), "the worker was killed"
    # Ray Data restarts a dead actor and retries its shard, so the first run usually completes by itself;
    # whether it did or gave up, the re-run must end with every image exactly once
    final = extract_collection(str(photo_folder), out, _options(int8_model, shard_size=2, workers=2), **kwargs)
    assert final.shards == 4 and final.images == 8
    _assert_equal_to_reference(out, reference)
    assert [name for name, _ in final.errors] == ["seq_b/broken.png"]

    # a run killed while writing: one shard missing and a temporary file left behind
    (out / "features-00001.parquet").unlink()
    (out / ".features-00001.parquet.999.partial").write_bytes(b"half a file")
    resumed = extract_collection(str(photo_folder), out, _options(int8_model, shard_size=2, workers=1), **QUIET)
    assert (resumed.extracted, resumed.skipped_shards) == (2, 3)
    assert not list(out.glob(".*partial"))
    _assert_equal_to_reference(out, reference)


@requires_weights
def test_two_node_cluster_h5_and_fsspec(int8_model, photo_folder, reference, tmp_path, monkeypatch):
    import fsspec
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": 100 * 1024**2})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=100 * 1024**2)
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        out = tmp_path / "run"
        # the images are read through an fsspec filesystem, as from object storage
        result = extract_collection(str(photo_folder), out, _options(int8_model, shard_size=3, workers=2,
                                                                      format="h5"),
                                    filesystem=fsspec.filesystem("file"), **QUIET)
        assert (result.extracted, result.failed) == (7, 1)
        _assert_equal_to_reference(out, reference)
        pairs = exhaustive_pairs(sorted(reference), window=3)
        match_collection(out, pairs, MatchingOptions(format="h5", pairs_per_task=4, workers=2), **QUIET)
        _assert_matches_equal(out, reference, pairs)
        _assert_merged_hloc(out, reference, pairs, tmp_path)
    finally:
        ray.shutdown()
        cluster.shutdown()
