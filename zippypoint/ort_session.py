"""ONNX Runtime sessions for the exported models: one set of options for every consumer (the extractor, latency
and profile measurements, the export checks), torch-free.

On x86 CPUs without VNNI, ONNX Runtime runs int8 convolutions with signed weights through ``vpmaddubsw``, which
saturates pairs of products at 16 bits (``zippypoint.machine.int8_products_saturate``). Measured on an AMD EPYC
with AVX2 only, the shipped int8 ONNX of the default preset then gave score maps off by up to 0.47 and descriptor
maps correlated 0.83 with the PyTorch model. ONNX Runtime's own switch for this (the session entry
``session.x64quantprecision``) fails to initialise these graphs in release 1.32, so :func:`unsigned_weights` moves
every int8 weight to uint8 (code + 128, zero point + 128; the dequantised weights are identical) before the session
is built: ONNX Runtime then uses its U8U8 kernels, which widen to 16 bits before multiplying (descriptor maps
correlated 0.999 on the same images). Elsewhere the file is loaded as it is.
"""

from __future__ import annotations

from pathlib import Path


def unsigned_weights(model: bytes) -> tuple[bytes, int]:
    """``model`` (serialised ONNX) with every constant int8 input of a DequantizeLinear that has a zero point moved to
    uint8 (value + 128, zero point + 128); returns (the new bytes, how many tensors moved). Needs the ``onnx``
    package."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    inits = {t.name: t for t in proto.graph.initializer}
    consumers: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    moved = 0
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        value, zero = inits.get(node.input[0]), inits.get(node.input[2])
        if value is None or zero is None or value.data_type != onnx.TensorProto.INT8:
            continue
        if consumers.get(node.input[0], 0) != 1 or consumers.get(node.input[2], 0) != 1:
            continue  # shared with another node: leave both as they are
        for tensor in (value, zero):
            shifted = numpy_helper.to_array(tensor).astype(np.int16) + 128
            tensor.CopyFrom(numpy_helper.from_array(shifted.astype(np.uint8), tensor.name))
        moved += 1
    return (proto.SerializeToString() if moved else model), moved


def session_options(threads: int | None = None, *, sequential: bool = False):
    """Full graph optimisation, warnings off, ``threads`` intra-op threads (None: ONNX Runtime's default);
    ``sequential``: one inter-op thread and sequential execution (timings)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads is not None:
        opts.intra_op_num_threads = threads
    if sequential:
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


def cpu_session(model: str | Path | bytes, options=None, *, providers: list[str] | None = None,
                unsigned: bool | None = None):
    """An ``onnxruntime.InferenceSession`` of ``model`` (a path or serialised bytes) with ``options``
    (:func:`session_options` by default). ``unsigned``: move int8 weights to uint8 first (default: where
    ``int8_products_saturate()``); a file without int8 weights is loaded unchanged either way."""
    import onnxruntime as ort

    from zippypoint.machine import int8_products_saturate

    options = session_options() if options is None else options
    providers = providers or ["CPUExecutionProvider"]
    if unsigned is None:
        unsigned = int8_products_saturate()
    if unsigned:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        if b"DequantizeLinear" in data:
            data, _ = unsigned_weights(data)
        return ort.InferenceSession(data, options, providers=providers)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)
