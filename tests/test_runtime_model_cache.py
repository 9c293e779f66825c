"""Cached exports of a preset for ``--runtime onnx|onnx-int8`` with a preset name."""

import pytest
from export_helpers import reference_model

from zippypoint.model.weights import WeightsError, save_weights
from zippypoint.runtime.model_cache import exported_model_path


def test_exports_once_and_reuses(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_weights(reference_model("zippypoint-fp-gray"), weights)
    first = exported_model_path("zippypoint-fp-gray", "onnx", weights=weights, directory=tmp_path / "cache")
    assert first.is_file() and first.parent == tmp_path / "cache"
    stamp = first.stat().st_mtime_ns
    again = exported_model_path("zippypoint-fp-gray", "onnx", weights=weights, directory=tmp_path / "cache")
    assert again == first and again.stat().st_mtime_ns == stamp
    assert not list((tmp_path / "cache").glob("*.partial"))

    from zippypoint.runtime import OnnxExtractor

    extractor = OnnxExtractor(first)
    assert extractor.in_channels == 1 and extractor.metadata.weights_sha256 != "random"


def test_missing_weights_and_bad_format(tmp_path):
    with pytest.raises(WeightsError, match="no weights"):
        exported_model_path("zippypoint", "onnx", weights=tmp_path / "none.safetensors", directory=tmp_path)
    with pytest.raises(ValueError, match="format"):
        exported_model_path("zippypoint", "coreml", directory=tmp_path)
