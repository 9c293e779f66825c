"""CoreML export: conversion on any OS (needs coremltools), prediction parity on macOS only."""

import sys

import numpy as np
import pytest
import torch
from export_helpers import exported, reference_model

from zippypoint.export.coreml_export import MAX_SIDE, MIN_SIDE
from zippypoint.export.folded import FoldedZippyPoint
from zippypoint.export.metadata import ExportMetadata
from zippypoint.export.onnx_export import _DenseOutputs


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace is what coremltools converts
def test_traced_module_is_shape_generic():
    """The module CoreML converts is traced once; it must stay correct at other sizes (flexible shapes)."""
    model = reference_model("zippypoint-fp")
    traced = torch.jit.trace(_DenseOutputs(FoldedZippyPoint(model)), torch.rand(1, 3, 64, 96), check_trace=False)
    x = torch.rand(1, 3, 40, 120)
    with torch.no_grad():
        ref, out = model(x), traced(x)
    for name, value in zip(("scores", "keypoints", "descriptors"), out, strict=True):
        torch.testing.assert_close(value, ref[name], atol=1e-4, rtol=1e-5)


@pytest.mark.slow
def test_converts_to_mlpackage():
    ct = pytest.importorskip("coremltools")
    path = exported("coreml", "zippypoint")
    assert path.suffix == ".mlpackage" and path.is_dir()
    spec = ct.utils.load_spec(str(path))
    assert spec.specificationVersion >= 7  # iOS 16 / macOS 13
    meta = ExportMetadata.from_props(dict(spec.description.metadata.userDefined))
    assert meta.format == "coreml" and meta.preset == "zippypoint" and meta.in_channels == 3
    ranges = spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert [(r.lowerBound, r.upperBound) for r in ranges][2:] == [(MIN_SIDE, MAX_SIDE)] * 2
    assert [o.name for o in spec.description.output] == ["scores", "keypoints", "descriptors"]


def test_rejects_wrong_suffix(tmp_path):
    pytest.importorskip("coremltools")
    from zippypoint.export.exporter import export_model

    with pytest.raises(ValueError, match=".mlpackage"):
        export_model("coreml", tmp_path / "model.onnx", "zippypoint", net=reference_model())


@pytest.mark.skipif(sys.platform != "darwin", reason="CoreML predictions run only on macOS")
def test_prediction_parity_on_macos():
    ct = pytest.importorskip("coremltools")
    model = reference_model("zippypoint")
    mlmodel = ct.models.MLModel(str(exported("coreml", "zippypoint")), compute_units=ct.ComputeUnit.CPU_ONLY)
    for shape in ((1, 3, 240, 320), (1, 3, 64, 96)):
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        out = mlmodel.predict({"image": x})
        with torch.no_grad():
            ref = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
        for name in ref:
            assert out[name].shape == ref[name].shape
            close = np.abs(out[name] - ref[name]) <= 1e-3
            assert close.mean() >= 0.95, f"{name}: {close.mean():.4f} within 1e-3"


@pytest.mark.slow
def test_conversion_is_quiet_and_in_eval_mode(tmp_path, capfd):
    pytest.importorskip("coremltools")
    from zippypoint.export.exporter import export_model

    capfd.readouterr()
    export_model("coreml", tmp_path / "m.mlpackage", "zippypoint-fp-gray", net=reference_model("zippypoint-fp-gray"))
    out, err = capfd.readouterr()
    assert "eval mode" not in out + err
    assert out.strip() == "" and err.strip() == "", out + err
