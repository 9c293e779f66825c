"""Weight files: safetensors only, sha256 verified, strict keys; unsafe or corrupted files refused."""

from __future__ import annotations

import pickle

import pytest
import torch

from zippypoint.model.registry import create_model, load_pretrained, load_weights
from zippypoint.model.weights import WeightsError, save_weights, sha256_file


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(1)
    model = create_model("zippypoint-fp")
    path = tmp_path / "w.safetensors"
    sha = save_weights(model, path, {"preset": "zippypoint-fp"})
    return model, path, sha


def test_round_trip_is_exact_and_returns_metadata(saved):
    model, path, sha = saved
    other = create_model("zippypoint-fp")
    meta = load_weights(other, path, sha256=sha)
    assert meta["preset"] == "zippypoint-fp"
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert sha256_file(path) == sha


def test_fp_weights_load_into_the_mixed_precision_model(saved):
    _, path, _ = saved
    load_weights(create_model("zippypoint"), path)


def test_wrong_sha256_is_refused(saved):
    _, path, _ = saved
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_weights(create_model("zippypoint-fp"), path, sha256="0" * 64)


def test_truncated_file_is_refused(saved, tmp_path):
    _, path, _ = saved
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        load_weights(create_model("zippypoint-fp"), cut)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickled_checkpoint_is_refused(tmp_path, writer):
    path = tmp_path / "evil.safetensors"
    state = create_model("zippypoint-fp").state_dict()
    if writer == "torch":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="pickle"):
        load_weights(create_model("zippypoint-fp"), path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_is_refused(tmp_path, protocol):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"weights": [1.0] * 100}, protocol=protocol))
    with pytest.raises(WeightsError, match="pickle"):
        load_weights(create_model("zippypoint-fp"), path)


def test_a_safetensors_file_whose_first_byte_is_0x80_is_not_taken_for_a_pickle(tmp_path):
    """The header length is little-endian: 128 modulo 256 makes the first byte 0x80, the pickle opcode."""
    from safetensors.torch import save_file

    from zippypoint.model.weights import read_state_dict

    path = tmp_path / "w.safetensors"
    tensors = {"x": torch.arange(6, dtype=torch.float32)}
    for pad in range(300):
        save_file(tensors, str(path), metadata={"note": "p" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    state, meta = read_state_dict(path)
    assert torch.equal(state["x"], tensors["x"]) and meta["note"].startswith("p")


def test_missing_and_unexpected_keys_are_named(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in create_model("zippypoint-fp").state_dict().items()}
    state.pop("score_out.bias")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "keys.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as exc:
        load_weights(create_model("zippypoint-fp"), path)
    assert "score_out.bias" in str(exc.value) and "extra.weight" in str(exc.value)


def test_grayscale_model_refuses_rgb_weights(saved):
    _, path, _ = saved
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_weights(create_model("zippypoint-fp-gray"), path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(create_model("zippypoint-fp"), tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="directory"):
        load_weights(create_model("zippypoint-fp"), tmp_path)


def test_preset_without_shipped_weights_fails_clearly():
    with pytest.raises(WeightsError, match="no pretrained weights"):
        load_pretrained(create_model("zippypoint-lean-fp"), "zippypoint-lean-fp")
