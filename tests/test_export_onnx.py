"""fp32 ONNX export: checker, metadata, dynamic shapes and parity with PyTorch on dense maps."""

import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import exported, reference_model

from zippypoint import __version__
from zippypoint.export.metadata import ExportMetadata


def _session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _compare(preset, shape, seed=0):
    model = reference_model(preset)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in model(x).items()}
    out = dict(zip(("scores", "keypoints", "descriptors"), _session(exported("onnx", preset)).run(None, {"image": x.numpy()}), strict=True))
    return ref, out


def test_checker_opset_and_metadata():
    proto = onnx.load(str(exported("onnx")))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = ExportMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    assert meta.preset == "zippypoint" and meta.format == "onnx" and meta.in_channels == 3
    assert meta.version == __version__ and meta.opset >= 17
    assert meta.weights_sha256 == "custom"
    assert "multiples of 8" in meta.input_contract
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 48, 72), (1, 3, 120, 160)])
def test_full_precision_parity_1e4(shape):
    ref, out = _compare("zippypoint-fp", shape)
    for k in ref:
        assert out[k].shape == ref[k].shape
        np.testing.assert_allclose(out[k], ref[k], atol=1e-4, rtol=0, err_msg=k)


def test_mixed_precision_parity_1e4():
    """The fake-quant forward is exported as computed, so the dense maps agree within 1e-4 -- except when
    float summation order (ONNX Runtime vs PyTorch kernels) moves a value across a rounding boundary; with
    random weights one flipped level spreads through the net. So: most inputs agree everywhere within 1e-4.
    (The full-precision preset, without rounding, is held to 1e-4 everywhere.)"""
    exact, broad = 0, []
    seeds = range(8)
    for seed in seeds:
        ref, out = _compare("zippypoint", (1, 3, 32, 48), seed)
        worst = max(float(np.abs(out[k] - ref[k]).max()) for k in ref)
        exact += worst <= 1e-4
        broad.append(min(float((np.abs(out[k] - ref[k]) <= 1e-4).mean()) for k in ref))
    assert exact >= len(seeds) // 2, f"only {exact}/{len(seeds)} inputs agree within 1e-4"
    assert np.median(broad) == 1.0, broad


def test_batch_and_size_are_dynamic():
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    s = _session(exported("onnx", "zippypoint-fp"))
    both = s.run(None, {"image": x.numpy()})
    one = s.run(None, {"image": x[1:].numpy()})
    for a, b in zip(both, one, strict=True):
        np.testing.assert_allclose(a[1:], b, atol=1e-5)
    assert both[0].shape == (2, 1, 5, 7) and both[2].shape == (2, 256, 10, 14)


def test_export_needs_weights_or_explicit_random(tmp_path, monkeypatch):
    from zippypoint.commands.export import main
    from zippypoint.export.exporter import load_export_model
    from zippypoint.model import registry
    from zippypoint.model.weights import WeightsError

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "no-weights")
    with pytest.raises(WeightsError, match="--random-weights"):
        load_export_model("zippypoint")
    assert main(["--format", "onnx", "--model", "zippypoint", "--out", str(tmp_path / "m.onnx")]) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_export_loads_a_weights_file(tmp_path):
    from zippypoint.export.exporter import load_export_model
    from zippypoint.model.weights import save_weights

    sha = save_weights(reference_model("zippypoint-fp-gray"), tmp_path / "w.safetensors")
    model, digest = load_export_model("zippypoint-fp-gray", weights=tmp_path / "w.safetensors")
    assert digest == sha and not model.training
    with pytest.raises(ValueError, match="not both"):
        load_export_model("zippypoint", weights=tmp_path / "w.safetensors", random_weights=True)


def test_bad_arguments():
    from zippypoint.export.exporter import export_model
    from zippypoint.export.onnx_export import trace_to_onnx

    with pytest.raises(ValueError, match="opset"):
        trace_to_onnx(reference_model(), 3, opset=13)
    with pytest.raises(ValueError, match="multiples of 8"):
        trace_to_onnx(reference_model(), 3, sample_size=(60, 96))
    with pytest.raises(ValueError, match="format"):
        export_model("tflite", "x.tflite", net=reference_model())
    with pytest.raises(ValueError, match="unknown model"):
        export_model("onnx", "x.onnx", "no-such-preset", random_weights=True)


@pytest.mark.slow
def test_cli_exports_random_weights(tmp_path, capsys):
    from zippypoint.cli import main

    out = tmp_path / "gray.onnx"
    assert main(["export", "--format", "onnx", "--model", "zippypoint-fp-gray", "--random-weights", "--out", str(out)]) == 0
    assert "sha256" in capsys.readouterr().out
    meta = ExportMetadata.from_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert meta.in_channels == 1 and meta.weights_sha256 == "random" and meta.preset == "zippypoint-fp-gray"


def test_entry_point_script_runs(tmp_path):
    import subprocess

    from export_helpers import REPO

    res = subprocess.run([sys.executable, str(REPO / "export" / "export_model.py"), "--help"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "--format" in res.stdout
