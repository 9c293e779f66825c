"""Our networks for the benchmark: which weights (shipped, a file, or random for timing) and their exports,
cached in a work folder so that repeated benchmarks reuse them.

An export is reused only when its preset, format, weights digest, calibration settings and the digest of the
model and export source code all match (recorded beside it as JSON); anything else re-exports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

RANDOM_SEED = 0
# source folders whose code decides what an export contains
_SOURCE_DIRS = ("model", "export", "quant")


@dataclass(frozen=True)
class WeightsChoice:
    preset: str  # registry preset name
    source: str  # "shipped", "file" or "random"
    path: str | None  # the safetensors file ("shipped" and "file")
    sha256: str  # digest of that file; "random-seed0" for seeded random weights

    @property
    def label(self) -> str:
        if self.source == "random":
            return "random (timing only: trained weights absent)"
        name = "shipped" if self.source == "shipped" else f"file {Path(self.path).name}"
        return f"{name} (sha256 {self.sha256[:12]})"


def resolve_weights(preset: str, file: str | Path | None = None, *, random_weights: bool = False) -> WeightsChoice:
    """Pick the weights of ``preset``: ``file`` if given, else the shipped ones if present, else seeded random
    ones (allowed for timing: the network costs the same). ``random_weights`` forces random ones."""
    from zippypoint.model.registry import get_preset
    from zippypoint.model.weights import sha256_file

    preset_info = get_preset(preset)  # ValueError for unknown presets
    if file is not None and random_weights:
        raise ValueError("pass either a weights file or random_weights, not both")
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        return WeightsChoice(preset, "file", str(path), sha256_file(path))
    shipped = preset_info.weights_path()
    if not random_weights and shipped is not None and shipped.is_file():
        return WeightsChoice(preset, "shipped", str(shipped), sha256_file(shipped))
    return WeightsChoice(preset, "random", None, f"random-seed{RANDOM_SEED}")


def build_network(choice: WeightsChoice):
    """The network of ``choice`` in eval mode, weights loaded strictly (random ones from a fixed seed)."""
    import torch

    from zippypoint.model.registry import create_model, load_pretrained, load_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = create_model(choice.preset)
    if choice.source == "shipped":
        load_pretrained(model, choice.preset)
    elif choice.source == "file":
        load_weights(model, choice.path)
    return model.eval()


def source_digest() -> str:
    """sha256 over the Python sources of the model, export and quantisation packages."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for folder in _SOURCE_DIRS:
        for path in sorted((root / folder).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class ExportCache:
    """Exports of our presets under ``root``: ``<preset>-<format>-<key>.onnx`` with a ``.json`` record."""

    def __init__(self, root: str | Path, *, calibration_dir: str | Path | None = None,
                 calibration_count: int = 64) -> None:
        if calibration_count < 1:
            raise ValueError(f"calibration_count must be >= 1, got {calibration_count}")
        self.root = Path(root)
        self.calibration_dir = calibration_dir
        self.calibration_count = calibration_count
        self._networks: dict[WeightsChoice, object] = {}

    def network(self, choice: WeightsChoice):
        """Build (once) the network of ``choice``."""
        if choice not in self._networks:
            self._networks[choice] = build_network(choice)
        return self._networks[choice]

    def _record(self, choice: WeightsChoice, fmt: str) -> dict:
        from zippypoint import __version__

        record = {"preset": choice.preset, "format": fmt, "weights": asdict(choice), "zippypoint": __version__,
                  "source_sha256": source_digest()}
        if fmt == "onnx-int8":
            from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR

            record["calibration_dir"] = str(Path(self.calibration_dir or DEFAULT_CALIBRATION_DIR).resolve())
            record["calibration_count"] = self.calibration_count
        return record

    def path(self, choice: WeightsChoice, fmt: str) -> Path:
        """The cached export of ``choice`` in ``fmt`` (onnx, onnx-int8, coreml), exported now if missing or
        stale."""
        from zippypoint.export.exporter import export_model
        from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR

        record = self._record(choice, fmt)
        key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
        suffix = ".mlpackage" if fmt == "coreml" else ".onnx"
        path = self.root / f"{choice.preset}-{fmt}-{key}{suffix}"
        sidecar = path.with_name(path.name + ".json")
        if path.exists() and sidecar.is_file() and json.loads(sidecar.read_text()) == record:
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        kwargs = {}
        if fmt == "onnx-int8":
            kwargs = {"calibration_dir": self.calibration_dir or DEFAULT_CALIBRATION_DIR,
                      "calibration_count": self.calibration_count}
        export_model(fmt, path, choice.preset, net=self.network(choice), **kwargs)
        sidecar.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        self._remove_stale(path, record)
        return path

    def _remove_stale(self, current: Path, record: dict) -> None:
        """Delete older exports of the same preset, format and weights (made from older source code)."""
        import shutil

        for sidecar in self.root.glob(f"{record['preset']}-{record['format']}-*.json"):
            old = sidecar.with_name(sidecar.name[: -len(".json")])
            if old == current:
                continue
            try:
                stale = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                continue
            if stale.get("format") == record["format"] and stale.get("weights") == record["weights"]:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
                sidecar.unlink(missing_ok=True)
