"""Network latency of a candidate on the real runtimes: OpenVINO (binary layers as 1-bit BinaryConvolution,
int8 layers as int8) and ONNX Runtime int8 (QDQ), random weights, one image, fixed threads, interleaved runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SIZES = ((640, 480), (320, 240))


def export_candidate(net, folder: str | Path, calibration_dir: str | Path, calibration_count: int = 1) -> dict:
    """Export ``net`` (eval) for timing: {"onnx-int8": .onnx, "openvino": .xml, "openvino-int8": .onnx} (quantised
    networks; the last runs the int8 file in OpenVINO, binary blocks as int8) or
    {"onnx": .onnx, "openvino-fp32": .onnx} (float ones). Calibrated on ``calibration_count`` photos at 160x120:
    the ranges do not change the cost."""
    from zippypoint.export.exporter import export_model, make_metadata
    from zippypoint.export.onnx_export import DEFAULT_OPSET

    folder = Path(folder)
    preset = "zippypoint-gray" if net.config.in_channels == 1 else "zippypoint"
    if not net.config.quantized:
        path = export_model("onnx", folder / "fp32.onnx", preset, net=net)
        return {"onnx": path, "openvino-fp32": path}
    from zippypoint.export.openvino_export import openvino_from_int8

    onnx_path = export_model("onnx-int8", folder / "int8.onnx", preset, net=net, calibration_dir=calibration_dir,
                             calibration_count=calibration_count, calibration_resize=(160, 120))
    meta = make_metadata(preset, "openvino", net, "random", DEFAULT_OPSET)
    # "openvino-int8": OpenVINO on the int8 file itself, i.e. the binary blocks as int8 convolutions
    return {"onnx-int8": onnx_path, "openvino": openvino_from_int8(net, onnx_path, folder / "model.xml", meta),
            "openvino-int8": onnx_path}


def _runner(runtime: str, path: Path, shape: tuple[int, ...], threads: int):
    if runtime.startswith("openvino"):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        model.reshape({model.inputs[0]: list(shape)})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                     "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: x})
    from zippypoint.runtime.latency import make_session

    session = make_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def measure_latency(files: dict[str, Path], in_channels: int, *, sizes=SIZES, runs: int = 10, threads: int = 1,
                    seed: int = 0) -> dict[str, float]:
    """Median milliseconds per runtime and size, runs interleaved: wall time ``"openvino@640x480"`` and process
    CPU time ``"openvino@640x480/cpu"``. On a machine shared with other work the wall time measures the load;
    with one thread the CPU time is what one inference costs, so the search ranks candidates by it."""
    import time

    from zippypoint.timing import interleaved_times

    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    for w, h in sizes:
        x = rng.random((1, in_channels, h, w), dtype=np.float32)
        calls = {rt: _runner(rt, p, x.shape, threads) for rt, p in files.items()}
        cpu: dict[str, list[float]] = {rt: [] for rt in calls}

        def timed(rt, f, x=x, cpu=cpu):
            def call(_i):
                t0 = time.process_time()
                f(x)
                cpu[rt].append((time.process_time() - t0) * 1e3)
            return call

        times = interleaved_times({rt: timed(rt, f) for rt, f in calls.items()}, runs, warmup=2)
        for rt, t in times.items():
            out[f"{rt}@{w}x{h}"] = float(np.median(t))
            out[f"{rt}@{w}x{h}/cpu"] = float(np.median(cpu[rt][2:]))  # without the warm-up calls
    return out


def candidate_latency(candidate, calibration_dir: str | Path, *, runs: int = 10, threads: int = 1,
                      seed: int = 0) -> dict[str, float]:
    """Export ``candidate`` with seeded random weights and time it (see :func:`measure_latency`)."""
    import torch

    from zippypoint.model.network import ZippyPointNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ZippyPointNet(candidate.config()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        files = export_candidate(net, tmp, calibration_dir)
        return measure_latency(files, net.config.in_channels, runs=runs, threads=threads, seed=seed)
