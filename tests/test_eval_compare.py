"""Paired bootstrap comparison of two methods' per-pair results (zippypoint.eval.compare)."""

import json

import pytest

from zippypoint.eval.compare import compare, main


def _pair(pair_id, c3=1.0, mma3=0.8, rep=0.7, loc=1.0, orders=True):
    pair = {"pair": pair_id, "correctness_3": c3, "repeatability": rep, "localization_error": loc,
            "mma": [0.3, 0.6, mma3] + [0.9] * 7}
    if orders:
        pair["correctness_3_orders"] = c3
    return pair


def _results(methods: dict[str, list[dict]], size="320x240"):
    return {"dataset": {"path": "/data/dev-viewpoint"},
            "protocol": {"resolutions": [{"size": size, "top_k": 300}], "mma_thresholds_px": list(range(1, 11))},
            "methods": {name: {"resolutions": {size: {"pairs": pairs}}} for name, pairs in methods.items()}}


def _ids(sequences, per):
    return [f"s{s}/{k}" for s in range(sequences) for k in range(2, 2 + per)]


def _by_metric(comparisons):
    return {c.metric: c for c in comparisons}


def test_identical_methods_differ_by_nothing():
    pairs = [_pair(i, c3=(n % 3) / 2, mma3=0.5 + n / 100) for n, i in enumerate(_ids(6, 5))]
    out = _by_metric(compare(_results({"a": pairs, "b": pairs}), "a", "b", resamples=500))
    for c in out.values():
        assert c.difference == 0 and c.low == 0 and c.high == 0
        assert c.verdict() == "not separated"
    assert out["c3"].pairs == 30 and out["c3"].sequences == 6 and out["c3"].unit == "sequences"


def test_uniformly_better_method_is_separated_in_the_right_direction():
    ids = _ids(6, 5)
    a = [_pair(i, mma3=0.9, loc=0.8) for i in ids]
    b = [_pair(i, mma3=0.7, loc=1.2) for i in ids]
    out = _by_metric(compare(_results({"a": a, "b": b}), "a", "b", resamples=500))
    assert out["mma3"].difference == pytest.approx(0.2)
    assert out["mma3"].low > 0 and out["mma3"].verdict() == "A better" and out["mma3"].share_a_worse == 0
    # localisation error: lower is better, so a negative difference is A's win
    assert out["loc"].high < 0 and out["loc"].verdict() == "A better"
    reverse = _by_metric(compare(_results({"a": a, "b": b}), "b", "a", resamples=500))
    assert reverse["mma3"].verdict() == "B better" and reverse["loc"].verdict() == "B better"
    assert reverse["mma3"].share_a_worse == 1.0


def test_sequences_not_pairs_are_resampled():
    # all of the difference sits in one of five sequences: a resample that leaves it out shows none
    ids = _ids(5, 10)
    a = [_pair(i, c3=1.0) for i in ids]
    b = [_pair(i, c3=0.0 if i.startswith("s0/") else 1.0) for i in ids]
    c = _by_metric(compare(_results({"a": a, "b": b}), "a", "b", metrics=["c3"], resamples=4000))["c3"]
    assert c.unit == "sequences"
    assert c.difference == pytest.approx(0.2)
    assert c.low == 0.0 and c.high > 0.2  # (4/5)^5 = 33 % of resamples miss sequence s0
    assert c.verdict() == "not separated"


def test_few_sequences_fall_back_to_pairs():
    ids = _ids(2, 3)
    a = [_pair(i, mma3=0.9) for i in ids]
    b = [_pair(i, mma3=0.8) for i in ids]
    c = _by_metric(compare(_results({"a": a, "b": b}), "a", "b", resamples=200))["mma3"]
    assert c.unit == "pairs" and c.pairs == 6 and c.sequences == 2


def test_single_run_correctness_is_used_without_orders():
    ids = _ids(5, 2)
    a = [_pair(i, c3=1.0, orders=False) for i in ids]
    b = [_pair(i, c3=0.0, orders=False) for i in ids]
    c = compare(_results({"a": a, "b": b}), "a", "b", metrics=["c3"], resamples=100)[0]
    assert c.mean_a == 1.0 and c.mean_b == 0.0


def test_empty_runs_give_an_empty_row_not_an_error():
    c = compare(_results({"a": [], "b": []}), "a", "b", metrics=["mma3"], resamples=10)[0]
    assert c.pairs == 0 and c.verdict() == "not separated"


@pytest.mark.parametrize("setup, message", [
    (lambda r: r, "not in the results"),
    (lambda r: r["methods"].update(b={"skipped": "kornia missing"}) or r, "kornia missing"),
    (lambda r: r["methods"]["b"]["resolutions"].update({"640x480": r["methods"]["b"]["resolutions"].pop("320x240")})
     or r, "not evaluated at 320x240"),
])
def test_clear_errors_for_missing_methods(setup, message):
    ids = _ids(5, 2)
    results = _results({"a": [_pair(i) for i in ids], "b": [_pair(i) for i in ids]})
    results = setup(results)
    name = "c" if message == "not in the results" else "b"
    with pytest.raises(ValueError, match=message):
        compare(results, "a", name)


def test_different_pair_sets_are_refused():
    results = _results({"a": [_pair(i) for i in _ids(5, 2)], "b": [_pair(i) for i in _ids(5, 3)]})
    with pytest.raises(ValueError, match="different pairs"):
        compare(results, "a", "b")


def test_command_line_writes_the_table_and_fails_clearly(tmp_path, capsys):
    ids = _ids(5, 2)
    results = _results({"ours": [_pair(i, mma3=0.9) for i in ids], "peer": [_pair(i, mma3=0.5) for i in ids]})
    run = tmp_path / "eval-vp"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    out = tmp_path / "compare.md"
    assert main([str(run), "--a", "ours", "--b", "peer", "--metrics", "mma3", "--resamples", "100",
                 "--out", str(out)]) == 0
    table = out.read_text()
    assert "| dev-viewpoint | 320x240 | mma3 | 10 (5) | sequences | 0.900 | 0.500 | +0.400 |" in table
    assert "A better" in table and table in capsys.readouterr().out
    assert main([str(tmp_path / "missing"), "--a", "ours", "--b", "peer"]) == 2
    assert main([str(run), "--a", "ours", "--b", "peer", "--metrics", "auc"]) == 2
    assert "unknown metric" in capsys.readouterr().err
