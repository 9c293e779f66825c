"""Safe weight files: safetensors only, sha256-verified, strict key matching."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Pickle protocol 2-5 starts with 0x80 and the protocol number; torch zip checkpoints start with "PK".
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


def _safetensors_prefix(data: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length that fits the file, then a JSON object. (Its
    first byte may be 0x80 like a pickle's when the header length is 128 modulo 256.)"""
    return len(data) > 8 and 0 < int.from_bytes(data[:8], "little") <= len(data) - 8 and data[8:9] == b"{"


class WeightsError(RuntimeError):
    """A weight file is missing, unsafe, corrupted or does not fit the model."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path, sha256: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a safetensors file into (state_dict, metadata), refusing anything else.

    ``sha256``: when given, the file's digest must match before anything is parsed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weight file not found: {path}")
    if path.is_dir():
        raise WeightsError(f"expected a .safetensors file, got a directory: {path}")
    data = path.read_bytes()
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise WeightsError(
                f"sha256 mismatch for {path}: expected {sha256}, got {digest} (corrupted or replaced file)"
            )
    if not _safetensors_prefix(data) and data[:4].startswith(_PICKLE_MAGIC):
        raise WeightsError(
            f"{path} is a pickled checkpoint; pickles can run arbitrary code and are refused. "
            "Convert it to safetensors first."
        )
    if len(data) < 8:
        raise WeightsError(f"{path} is truncated ({len(data)} bytes): not a safetensors file")
    try:
        state = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path} is not a valid safetensors file (truncated or corrupted): {exc}") from exc
    return state, dict(header.get("__metadata__", {}))


def load_state_strict(model, state: dict[str, Any], source: str = "weights") -> None:
    """``load_state_dict(strict=True)`` with missing/unexpected keys and shape errors reported by name."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
        if mismatched:
            parts.append(f"shape mismatches: {mismatched[:10]}")
        raise WeightsError(f"{source} do not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def save_weights(model, path: str | Path, metadata: dict[str, str] | None = None) -> str:
    """Write the model's state dict as safetensors; returns the file's sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    save_file(state, str(path), metadata=meta)
    return sha256_file(path)
