"""Card metrics come only from evaluations of the shipped files."""

import json

import pytest

from zippypoint.train.card_metrics import card_metrics, update_card


def _results(method: str, settings: dict, data: str = "/x/dev-viewpoint", size: str = "320x240") -> dict:
    summary = {"pairs": 5, "correctness_3": 0.8, "correctness_3_orders": 0.7833, "mma": {"3": 0.84123},
               "repeatability": 0.81, "localization_error": 1.01}
    return {"environment": {"cpu": "Test CPU", "cpu_count": 2}, "dataset": {"path": data},
            "protocol": {"ransac_orders": 12},
            "methods": {method: {"resolutions": {size: {"top_k": 300, "settings": settings, "summary": summary}}}}}


WEIGHTS_CARD = {"preset": "zippypoint-slim-h64", "sha256": "w" * 64}
MODEL_CARD = {"file": "m.xml", "sha256": "m" * 64, "weights_sha256": "w" * 64}


def test_metrics_of_the_packaged_export_are_recorded_per_set_and_size():
    method = "openvino:zippypoint-slim-h64"
    res = [_results(method, {"model_sha256": "m" * 64}),
           _results(method, {"model_sha256": "m" * 64}, data="/y/hpatches-dev", size="640x480")]
    block = card_metrics(res, method, WEIGHTS_CARD, MODEL_CARD)
    assert block["dev-viewpoint_320x240_top300"] == {"pairs": 5, "c3": 0.8, "c3_orders": 0.783, "ransac_orders": 12,
                                                     "mma3": 0.841, "repeatability": 0.81,
                                                     "localization_error_px": 1.01}
    assert "hpatches-dev_640x480_top300" in block
    assert block["method"] == method and "Test CPU, 2 cores" in block["runtime"]


def test_results_of_other_files_are_refused():
    method = "openvino:zippypoint-slim-h64"
    with pytest.raises(ValueError, match="not the packaged"):
        card_metrics([_results(method, {"model_sha256": "x" * 64})], method, WEIGHTS_CARD, MODEL_CARD)
    stale = dict(MODEL_CARD, weights_sha256="old")
    with pytest.raises(ValueError, match="repackage"):
        card_metrics([_results(method, {"model_sha256": "m" * 64})], method, WEIGHTS_CARD, stale)
    with pytest.raises(ValueError, match="not the card's"):
        card_metrics([_results("zippypoint-slim-h64", {"weights_sha256": "v" * 64})], "zippypoint-slim-h64",
                     WEIGHTS_CARD)
    with pytest.raises(ValueError, match="no results for"):
        card_metrics([_results("sift", {})], method, WEIGHTS_CARD, MODEL_CARD)
    with pytest.raises(ValueError, match="no evaluation results"):
        card_metrics([], method, WEIGHTS_CARD, MODEL_CARD)


def test_update_card_replaces_only_the_metrics(tmp_path):
    card = {**WEIGHTS_CARD, "stages": [{"steps": 3}], "metrics": {"old": 1}}
    (tmp_path / "zippypoint-slim-h64.card.json").write_text(json.dumps(card))
    (tmp_path / "zippypoint-slim-h64-openvino.xml.card.json").write_text(json.dumps(MODEL_CARD))
    (tmp_path / "zippypoint-slim-h64-openvino.xml").write_text("<net/>")  # a card without its file is no export
    method = "openvino:zippypoint-slim-h64"
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(json.dumps(_results(method, {"model_sha256": "m" * 64})))
    update_card("zippypoint-slim-h64", method, [tmp_path / "eval"], dest=tmp_path)
    written = json.loads((tmp_path / "zippypoint-slim-h64.card.json").read_text())
    assert written["stages"] == [{"steps": 3}] and "old" not in written["metrics"]
    assert written["metrics"]["dev-viewpoint_320x240_top300"]["c3"] == 0.8
    with pytest.raises(ValueError, match="does not run preset"):
        update_card("zippypoint-slim-h64", "openvino:zippypoint", [tmp_path / "eval"], dest=tmp_path)
    with pytest.raises(FileNotFoundError, match="results.json"):
        update_card("zippypoint-slim-h64", method, [tmp_path / "missing"], dest=tmp_path)
