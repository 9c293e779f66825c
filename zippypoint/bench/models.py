"""Exports of our networks for the benchmark, cached in a work folder so that repeated benchmarks reuse them.
Which weights a preset runs with (shipped, a file, or random for timing) is ``zippypoint.resolve``'s choice.

An export is reused only when its preset, format, weights digest, calibration settings and the digest of the
model and export source code all match (recorded beside it as JSON); anything else re-exports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

# source folders whose code decides what an export contains
_SOURCE_DIRS = ("model", "export", "quant")


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
        self._networks: dict = {}

    def network(self, choice):
        """Build (once) the network of ``choice`` (a ``zippypoint.resolve.ModelChoice``)."""
        from zippypoint.resolve import build_network

        if choice not in self._networks:
            self._networks[choice] = build_network(choice)
        return self._networks[choice]

    def _record(self, choice, fmt: str) -> dict:
        from zippypoint import __version__

        record = {"preset": choice.preset, "format": fmt, "weights": asdict(choice), "zippypoint": __version__,
                  "source_sha256": source_digest()}
        if fmt in ("onnx-int8", "openvino", "openvino-int8"):
            from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR

            record["calibration_dir"] = str(Path(self.calibration_dir or DEFAULT_CALIBRATION_DIR).resolve())
            record["calibration_count"] = self.calibration_count
        return record

    def path(self, choice, fmt: str) -> Path:
        """The cached export of ``choice`` in ``fmt`` (onnx, onnx-int8, coreml), exported now if missing or
        stale."""
        from zippypoint.export.exporter import export_model
        from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR

        record = self._record(choice, fmt)
        key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
        suffix = {"coreml": ".mlpackage", "openvino": ".xml", "openvino-int8": ".xml"}.get(fmt, ".onnx")
        path = self.root / f"{choice.preset}-{fmt}-{key}{suffix}"
        sidecar = path.with_name(path.name + ".json")
        if path.exists() and sidecar.is_file() and json.loads(sidecar.read_text()) == record:
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        kwargs = {}
        if fmt == "openvino-int8":  # the IR with the binary blocks as int8 convolutions
            kwargs = {"openvino_one_bit": False}
        if fmt in ("onnx-int8", "openvino", "openvino-int8"):
            kwargs = {**kwargs, "calibration_dir": self.calibration_dir or DEFAULT_CALIBRATION_DIR,
                      "calibration_count": self.calibration_count}
        export_model("openvino" if fmt == "openvino-int8" else fmt, path, choice.preset, net=self.network(choice),
                     **kwargs)
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
                if old.suffix == ".xml":  # an OpenVINO IR's weights
                    old.with_suffix(".bin").unlink(missing_ok=True)
                sidecar.unlink(missing_ok=True)
