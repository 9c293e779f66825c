"""Matching a pair list over the features of a distributed extraction, with Ray and the Hamming matcher.

``match_collection(features_dir, pairs, MatchingOptions(...))``: pairs are grouped by the feature shards of
their two images, and each group cut into tasks of at most ``pairs_per_task`` pairs, so a task reads at most two
feature files and each of its images once. Task ``k`` writes ``matches-<k>.parquet`` (``name0``, ``name1``,
``matches``; ``zippypoint.store.parquet``) or ``matches-<k>.h5`` (hloc's layout) atomically; a re-run skips
finished tasks. Matches are those of ``zippypoint.binary_desc.matcher.match_hamming`` with the same options
(mutual nearest neighbours, Lowe's ratio) on the same features.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.distributed.extract import SUFFIX, _run_actors, feature_files
from zippypoint.distributed.pairs import write_pairs
from zippypoint.distributed.shards import (
    check_options,
    check_or_write_plan,
    items_digest,
    remove_partials,
    shard_file,
    write_h5_shard,
    write_json_atomic,
)

PAIRS_FILE = "pairs.txt"  # the run's pair list, one "name0 name1" per line


@dataclass(frozen=True)
class MatchingOptions:
    ratio: float | None = 0.95  # Lowe's ratio (None = off)
    mutual: bool = True  # keep mutual nearest neighbours only
    max_distance: int | None = None  # largest accepted Hamming distance in bits (None = no limit)
    pairs_per_task: int = 512  # pairs per task (and per output shard)
    format: str = "parquet"  # parquet or h5 (hloc matches layout), one file per task
    workers: int = 2  # actors
    threads_per_worker: int = 1  # Ray CPUs per actor

    def __post_init__(self) -> None:
        check_options(self, tuple(SUFFIX), ("pairs_per_task", "workers", "threads_per_worker"))

    def matcher_kwargs(self) -> dict:
        return {"ratio": self.ratio, "mutual": self.mutual, "max_distance": self.max_distance}


def feature_index(files: list[Path]) -> dict[str, Path]:
    """Image name -> the feature file (shard) holding it."""
    index = {}
    for path in files:
        if path.suffix == ".parquet":
            from zippypoint.store.parquet import read_names

            names = read_names(path)
        else:
            from zippypoint.store.hloc import list_names

            names = list_names(path)
        for name in names:
            if name in index:
                raise ValueError(f"image {name!r} is in both {index[name]} and {path}")
            index[name] = path
    return index


def load_features(path: str | Path, names: list[str]) -> dict[str, dict]:
    """Features of ``names`` from one feature shard (Parquet or hloc h5)."""
    path = Path(path)
    if path.suffix == ".parquet":
        from zippypoint.store.parquet import read_features

        return read_features(path, names)
    from zippypoint.store.hloc import read_features

    return {name: read_features(path, name) for name in names}


def plan_tasks(pairs: list[tuple[str, str]], index: dict[str, Path], pairs_per_task: int) -> list[dict]:
    """Tasks of at most ``pairs_per_task`` pairs whose images lie in at most two feature files, in a fixed order;
    each lists the images it needs and their files (``load_names``, ``load_files``)."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for a, b in pairs:
        missing = [n for n in (a, b) if n not in index]
        if missing:
            raise ValueError(f"no features for {', '.join(missing)} (pair {a} / {b})")
        key = tuple(sorted((str(index[a]), str(index[b]))))
        groups[key].append((a, b))
    tasks = []
    for key in sorted(groups):
        group = groups[key]
        for start in range(0, len(group), pairs_per_task):
            chunk = group[start:start + pairs_per_task]
            wanted = sorted({n for pair in chunk for n in pair})
            tasks.append({"task": len(tasks), "name0": [p[0] for p in chunk], "name1": [p[1] for p in chunk],
                          "load_names": wanted, "load_files": [str(index[n]) for n in wanted]})
    return tasks


class PairMatcher:
    """A Ray Data actor: matches whole tasks (one per row of a batch) and writes their matches shard."""

    def __init__(self, matcher_kwargs: dict, out_dir: str, fmt: str) -> None:
        self.matcher_kwargs = matcher_kwargs
        self.out_dir = Path(out_dir)
        self.fmt = fmt

    def __call__(self, batch: dict) -> dict:
        from zippypoint.binary_desc.matcher import match_hamming

        out = {"task": [], "pairs": [], "failed": [], "seconds": []}
        for task, name0, name1, load_names, load_files in zip(
                batch["task"], batch["name0"], batch["name1"], batch["load_names"], batch["load_files"],
                strict=True):
            start = time.perf_counter()
            name0, name1 = [str(n) for n in name0], [str(n) for n in name1]
            by_file: dict[str, list[str]] = defaultdict(list)
            for name, path in zip(load_names, load_files, strict=True):
                by_file[str(path)].append(str(name))
            feats: dict[str, dict] = {}
            for path, names in by_file.items():  # each image of the task read once
                feats.update(load_features(path, names))
            records = [(a, b, match_hamming(feats[a]["descriptors"], feats[b]["descriptors"],
                                            **self.matcher_kwargs))
                       for a, b in zip(name0, name1, strict=True)]
            write_matches_shard(self.out_dir, int(task), self.fmt, records,
                                {n: len(f["keypoints"]) for n, f in feats.items()})
            out["task"].append(int(task))
            out["pairs"].append(len(records))
            out["failed"].append(0)
            out["seconds"].append(time.perf_counter() - start)
        return {k: np.asarray(v) for k, v in out.items()}


def write_matches_shard(out_dir: Path, task: int, fmt: str, records: list, num_keypoints: dict) -> None:
    target = shard_file(out_dir, "matches", task, SUFFIX[fmt])
    if fmt == "parquet":
        from zippypoint.store.parquet import write_matches

        write_matches(target, records)
        return
    from zippypoint.store.hloc import write_matches as write_h5

    write_h5_shard(target, lambda path, a, b, m: write_h5(path, a, b, m, num_keypoints0=num_keypoints[a]), records)


@dataclass(frozen=True)
class MatchingResult:
    out_dir: Path
    pairs: int  # pairs asked for
    matched: int  # pairs matched in this run
    tasks: int  # tasks (output shards) in the plan
    skipped_tasks: int  # tasks already finished before this run
    seconds: float  # wall time of the Ray part

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def match_collection(features_dir: str | Path, pairs: list[tuple[str, str]],
                     options: MatchingOptions = MatchingOptions(), *, out_dir: str | Path | None = None,
                     address: str | None = None, runtime_env: dict | None = None, progress: bool = True,
                     worker_class: type = PairMatcher) -> MatchingResult:
    """Match ``pairs`` using the feature shards in ``features_dir``; matches go to ``out_dir`` (default: the
    same folder); ``address`` and ``runtime_env`` as for ``extract_collection``. See the module docstring."""
    features_dir = Path(features_dir)
    out_dir = Path(out_dir) if out_dir is not None else features_dir
    files = feature_files(features_dir)
    if not files and not (features_dir / "extract-plan.json").is_file():  # an empty run has a plan, no shards
        raise FileNotFoundError(f"no feature shards (features-*.parquet / .h5) in {features_dir}")
    index = feature_index(files)
    tasks = plan_tasks(list(pairs), index, options.pairs_per_task)
    plan = {"features": str(features_dir.resolve()), "pairs": len(pairs), "pairs_sha256": items_digest(pairs),
            "options": {k: v for k, v in dataclasses.asdict(options).items()
                        if k not in ("workers", "threads_per_worker")}}
    out_dir.mkdir(parents=True, exist_ok=True)
    check_or_write_plan(out_dir, plan, "match")
    if not (out_dir / PAIRS_FILE).is_file():
        write_pairs(out_dir / PAIRS_FILE, pairs)  # hloc's pairs.txt; also names the pairs of h5 shards
    remove_partials(out_dir, ("matches",))
    suffix = SUFFIX[options.format]
    pending = [t for t in tasks if not shard_file(out_dir, "matches", t["task"], suffix).is_file()]
    matched = 0
    start = time.perf_counter()
    if pending:
        summaries = _run_actors(pending, worker_class, dict(
            matcher_kwargs=options.matcher_kwargs(), out_dir=str(out_dir.resolve()), fmt=options.format),
            options.workers, options.threads_per_worker, address, runtime_env, progress,
            total=sum(len(t["name0"]) for t in pending), unit="pair", desc="match")
        matched = sum(int(s["pairs"]) for s in summaries)
    result = MatchingResult(out_dir, len(pairs), matched, len(tasks), len(tasks) - len(pending),
                            time.perf_counter() - start)
    write_json_atomic(out_dir / "match-summary.json", result.to_dict())
    return result


def match_files(out_dir: str | Path) -> list[Path]:
    """The finished matches shards of a run folder, in task order."""
    out_dir = Path(out_dir)
    return sorted(p for p in out_dir.iterdir() if p.name.startswith("matches-") and p.suffix in (".parquet", ".h5"))
