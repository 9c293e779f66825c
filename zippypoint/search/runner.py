"""``zippypoint search`` end to end: graph features of every candidate, clustering, latency of the cluster
representatives on OpenVINO (1-bit + int8) and ONNX Runtime int8, the optional short-training proxy, the report.

Results are cached per candidate in ``<out>/results.json`` so an interrupted search resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PAPER = "c3-s1-paper-d4-sep-hc4"
LEAN = "c1-s2-paper-d8-shared-h128"  # the zippypoint-lean preset


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    tmp.replace(path)


def run_search(out: str | Path, *, calibration_dir: str | Path, clusters: int = 10, runs: int = 10,
               threads: int = 1, data: str | Path | None = None, hpatches: str | Path | None = None,
               proxy_steps: int = 0, proxy_minutes: float | None = None, progress: bool = True) -> dict:
    """Run the search into folder ``out``; returns ``{"candidates": {...}, "representatives": [...]}``."""
    from tqdm import tqdm

    from zippypoint.search.cluster import feature_matrix, kmeans, representatives
    from zippypoint.search.latency import candidate_latency
    from zippypoint.search.space import graph_features, search_space

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "results.json"
    results = _load(cache)
    candidates = search_space()
    for c in tqdm(candidates, desc="graph features", disable=not progress):
        entry = results.setdefault(c.name, {"overrides": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in c.overrides.items()}})
        if "features" not in entry:
            entry["features"] = graph_features(c, (640, 480))
    _save(cache, results)
    x = feature_matrix([results[c.name]["features"] for c in candidates])
    labels = kmeans(x, min(clusters, len(candidates)))
    names = [c.name for c in candidates]
    must = [names.index(n) for n in (PAPER, LEAN) if n in names]
    reps = representatives(x, labels, must)
    for c, label in zip(candidates, labels, strict=True):
        results[c.name]["cluster"] = int(label)
        results[c.name]["representative"] = names.index(c.name) in reps
    _save(cache, results)
    for i in tqdm(reps, desc="latency (representatives)", disable=not progress):
        entry = results[names[i]]
        if "latency" not in entry:
            entry["latency"] = candidate_latency(candidates[i], calibration_dir, runs=runs, threads=threads)
            _save(cache, results)
    if proxy_steps and data is not None and hpatches is not None:
        from zippypoint.search.proxy import proxy_accuracy

        for i in tqdm(reps, desc="accuracy proxy", disable=not progress):
            entry = results[names[i]]
            if "proxy" not in entry:
                summary = proxy_accuracy(candidates[i], data, hpatches, out / "proxy" / names[i], steps=proxy_steps,
                                         max_minutes=proxy_minutes)
                entry["proxy"] = {k: v for k, v in summary.items() if k.startswith("hp_") or k in ("steps",
                                                                                                    "wall_time_s")}
                _save(cache, results)
    return {"candidates": results, "representatives": [names[i] for i in reps],
            "clusters": int(len(np.unique(labels)))}
