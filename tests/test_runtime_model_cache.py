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


def test_packaged_int8_model_is_used_without_export(tmp_path, monkeypatch):
    from zippypoint.model.registry import WEIGHTS_DIR
    from zippypoint.resolve import default_runtime

    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path / "cache"))
    path = exported_model_path("zippypoint", "onnx-int8")
    assert path == WEIGHTS_DIR / "zippypoint-int8.onnx"
    assert not (tmp_path / "cache").exists()
    assert default_runtime("zippypoint") == "onnx-int8"
    assert default_runtime("zippypoint-gray") in ("torch", "onnx-int8")  # no packaged model: torch where installed


def test_int8_export_of_other_weights_needs_the_data_setting_not_the_current_folder(tmp_path, monkeypatch):
    weights = tmp_path / "w.safetensors"
    save_weights(reference_model("zippypoint"), weights)
    monkeypatch.delenv("ZIPPYPOINT_DATA", raising=False)
    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="ZIPPYPOINT_DATA"):
        exported_model_path("zippypoint", "onnx-int8", weights=weights)
    assert not list((tmp_path / "cache").rglob("*.onnx"))
