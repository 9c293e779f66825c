"""The lean-topology search: its space, graph features, clustering, Pareto front and report (latency and the
proxy training are exercised by ``zippypoint search`` itself; they take minutes per candidate)."""

from __future__ import annotations

import numpy as np
import pytest

from zippypoint.search.cluster import feature_matrix, kmeans, pareto_front, representatives
from zippypoint.search.report import latency_accuracy_figure, markdown_table
from zippypoint.search.runner import LEAN, PAPER
from zippypoint.search.space import graph_features, search_space


def test_space_holds_the_paper_and_the_lean_preset():
    from zippypoint.model.config import ModelConfig
    from zippypoint.model.registry import get_preset

    space = {c.name: c for c in search_space()}
    assert len(space) == len(search_space())  # names are unique
    assert space[PAPER].config() == ModelConfig()
    assert space[LEAN].config() == get_preset("zippypoint-lean").config
    assert any(not c.config().quantized for c in space.values())  # the precision axis


def test_graph_features_split_macs_by_precision():
    space = {c.name: c for c in search_space()}
    paper = graph_features(space[PAPER], (640, 480))
    assert round(paper["gmac"], 1) == 40.7 and round(paper["gmac_binary"], 1) == 8.5 and paper["convs"] == 21
    assert paper["gmac"] == pytest.approx(paper["gmac_binary"] + paper["gmac_int8"] + paper["gmac_float"])
    lean = graph_features(space[LEAN], (640, 480))
    assert lean["gmac"] < 0.4 * paper["gmac"] and lean["gmac_binary"] == paper["gmac_binary"]
    assert lean["desc_map_mfloats"] == pytest.approx(paper["desc_map_mfloats"] / 4)


def test_kmeans_representatives_and_pareto_front():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.05, (10, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    labels = kmeans(blobs, 3, seed=1)
    assert sorted(np.bincount(labels).tolist()) == [10, 10, 10]
    assert all(len(set(labels[i * 10:(i + 1) * 10])) == 1 for i in range(3))
    reps = representatives(blobs, labels, must=[25])
    assert len(reps) == 3 and 25 in reps
    assert np.array_equal(kmeans(blobs, 3, seed=1), labels)  # deterministic
    with pytest.raises(ValueError):
        kmeans(blobs, 0)
    assert pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.7, 0.6]) == [0, 2]
    assert pareto_front([], []) == []


def test_report_table_and_figure(tmp_path):
    space = search_space()[:4]
    feats = [graph_features(c, (160, 120)) for c in space]
    x = feature_matrix(feats)
    assert x.shape == (4, 6) and np.isfinite(x).all()
    results = {c.name: {"features": f, "cluster": i, "representative": i < 3} for i, (c, f) in
               enumerate(zip(space, feats, strict=True))}
    for i, name in enumerate(list(results)[:3]):
        results[name]["latency"] = {"openvino@640x480/cpu": 30.0 - i, "onnx-int8@640x480/cpu": 60.0}
        results[name]["proxy"] = {"hp_mma_3": 0.3 + 0.1 * (i % 2)}
    table = markdown_table(results)
    assert table.count("\n") == 1 + len(results) and "30.0" in table and "0.400" in table
    assert latency_accuracy_figure(results, tmp_path / "s.png").stat().st_size > 1000
