"""One hloc features.h5 / matches.h5 from the shards of a distributed run (Parquet or h5 shards).

hloc's tools (triangulation, localisation) and ``zippypoint reconstruct`` read one features file and one matches
file; ``merge_to_hloc`` writes them from the shards in shard order, through ``zippypoint.store.hloc``.
"""

from __future__ import annotations

from pathlib import Path

from zippypoint.distributed.match import PAIRS_FILE


def _shard_features(path: Path) -> dict[str, dict]:
    from zippypoint.distributed.match import feature_index, load_features

    return load_features(path, sorted(feature_index([path])))


def merge_to_hloc(run_dir: str | Path, features_h5: str | Path | None = None,
                  matches_h5: str | Path | None = None) -> tuple[int, int]:
    """Write the run's features to ``features_h5`` and its matches to ``matches_h5`` (either may be None);
    returns (images written, pairs written). Existing files are replaced atomically."""
    from zippypoint.distributed.extract import feature_files
    from zippypoint.store import hloc
    from zippypoint.store.atomic import atomic_path

    run_dir = Path(run_dir)
    images = pairs = 0
    keypoints: dict[str, int] = {}
    if features_h5 is not None:
        with atomic_path(features_h5) as partial:  # no image: nothing written, the target left as it was
            for path in feature_files(run_dir):
                for name, feats in _shard_features(path).items():
                    size = feats.get("image_size")
                    hloc.write_features(partial, name, feats, tuple(int(v) for v in size))
                    keypoints[name] = len(feats["keypoints"])
                    images += 1
    if matches_h5 is not None:
        with atomic_path(matches_h5) as partial:  # no pair: nothing written, the target left as it was
            for a, b, m in _run_matches(run_dir):
                hloc.write_matches(partial, a, b, m, num_keypoints0=keypoints.get(a))
                pairs += 1
    return images, pairs


def _run_matches(run_dir: Path):
    """(name0, name1, int64 [M, 2]) of every matched pair of a run, in task order."""
    from zippypoint.distributed.match import match_files

    files = match_files(run_dir)
    parquet_files = [f for f in files if f.suffix == ".parquet"]
    if parquet_files:
        from zippypoint.store.parquet import read_matches

        for path in parquet_files:
            for (a, b), m in read_matches(path).items():
                yield a, b, m
    h5_files = [f for f in files if f.suffix == ".h5"]
    if h5_files:  # hloc's pair keys flatten '/' in names: the run's pairs.txt gives the names back
        import h5py

        from zippypoint.distributed.pairs import read_pairs
        from zippypoint.store import hloc

        where: dict[str, Path] = {}
        for path in h5_files:
            with h5py.File(path, "r") as f:
                keys: list[str] = []
                # the visitor must return None: any other value stops the visit
                f.visititems(lambda key, obj, found=keys: found.append(key) if isinstance(obj, h5py.Group)
                             and "matches0" in obj else None)
            where.update(dict.fromkeys(keys, path))
        for a, b in read_pairs(run_dir / PAIRS_FILE):
            path = where.get(hloc.names_to_pair(a, b))
            if path is not None:
                yield a, b, hloc.read_matches(path, a, b)[0]
