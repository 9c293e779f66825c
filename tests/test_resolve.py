"""The model resolver and extractor factory (zippypoint.resolve), and the one data setting."""

from pathlib import Path

import numpy as np
import pytest

from zippypoint.data_paths import DATA_ENV, FALLBACK_ROOT, data_path, data_root
from zippypoint.model import registry
from zippypoint.model.weights import WeightsError, sha256_file
from zippypoint.resolve import (
    RUNTIMES,
    available_runtimes,
    build_extractor,
    build_network,
    model_file,
    resolve_model,
)


def test_shipped_random_and_file_weights(tmp_path):
    shipped = resolve_model("zippypoint")
    assert shipped.source == "shipped" and shipped.sha256 == sha256_file(shipped.path)
    assert resolve_model("zippypoint", random_weights=True).sha256 == "random"
    from zippypoint.model.weights import save_weights

    digest = save_weights(build_network(resolve_model("zippypoint-gray", fallback_random=True)), tmp_path / "w.st")
    chosen = resolve_model("zippypoint-gray", tmp_path / "w.st")
    assert chosen.source == "file" and chosen.sha256 == digest and "w.st" in chosen.label


def test_random_weights_are_seeded():
    choice = resolve_model("zippypoint-gray", random_weights=True)
    a, b = build_network(choice), build_network(choice)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert np.array_equal(pa.numpy(), pb.numpy()), name


def test_resolver_refuses_with_reasons(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown model"):
        resolve_model("superpoint")
    with pytest.raises(ValueError, match="not both"):
        resolve_model("zippypoint", tmp_path / "w.safetensors", random_weights=True)
    with pytest.raises(FileNotFoundError, match="w.safetensors"):
        resolve_model("zippypoint", tmp_path / "w.safetensors")
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "none")
    with pytest.raises(WeightsError, match="--random-weights"):
        resolve_model("zippypoint")
    assert resolve_model("zippypoint", fallback_random=True).source == "random"


def test_factory_builds_the_torch_runtime_and_refuses_bad_options(tmp_path):
    extractor = build_extractor("zippypoint-gray", "torch", random_weights=True)
    assert extractor.name == "zippypoint-gray" and extractor.in_channels == 1
    batch, info = extractor.prepare(np.full((48, 64, 3), 128, np.uint8))
    assert batch.shape == (1, 1, 48, 64) and info.original_size == (64, 48)
    with pytest.raises(ValueError, match="runtime must be one of"):
        build_extractor("zippypoint", "tflite")
    with pytest.raises(ValueError, match="threads"):
        build_extractor("zippypoint", "torch", threads=-1)
    with pytest.raises(ValueError, match="torch runtime only"):
        build_extractor("zippypoint", "onnx", random_weights=True)
    assert model_file(tmp_path / "m.onnx", "onnx") == tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="no exported file"):
        model_file("zippypoint", "torch")
    assert set(available_runtimes()) <= set(RUNTIMES) and "torch" in available_runtimes()


def test_one_data_setting(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_root() == FALLBACK_ROOT and data_root(fallback=False) is None
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root(fallback=False) == tmp_path and data_path("hpatches-dev") == Path(tmp_path, "hpatches-dev")
