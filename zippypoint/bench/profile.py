"""Per-layer profile of an exported model under ONNX Runtime or OpenVINO: which op types, nodes and layers take
the time.

ONNX Runtime's profiler (``SessionOptions.enable_profiling``) writes a Chrome-trace JSON with one event per
executed node of the *optimised* graph. Events of the warm-up runs are dropped (they include allocation);
the rest are averaged per run. Each node is attributed to a network layer (``conv_in``, ``block1a``, ...,
``desc_out``): a convolution by its weight's name, another node by its name in the exported graph or else by
the layer of the node that produces its first input; nodes the optimiser created without a name in the saved
graph take the layer of the node that ran just before them (the executor runs nodes in topological order);
nodes before the first layer are ``input``.

OpenVINO (``profile_openvino``): the CPU plugin's performance counters (``PERF_COUNT``) give one time per node of
the *compiled* graph (after fusion: a convolution with its quantiser, a "Subgraph" of fused elementwise ops), which
is what the op column shows with its kernel (``BinaryConvolution [jit_avx2_u1]``, ``Convolution [jit_avx2_I8]``).
A node belongs to the layer named by its weights (``net.<layer>.…``) or by the exporter's names of the 1-bit
layers (``<block>.sign``, ``<block>.binary_conv``), else to the layer of the node that runs before it.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

_LAYER = re.compile(r"(?:^|[/.\s'\[])net\.([A-Za-z0-9_]+)")
_BINARY_NAME = re.compile(r"^(block[A-Za-z0-9_]+?)\.(?:sign|binary_conv|branch)$")
_TOKEN = re.compile(r"(_token_\d+)+$")
_NCHWC = re.compile(r"_nchwc$")


def _layer_of_text(text: str) -> str | None:
    match = _LAYER.search(text)
    return match.group(1) if match else None


def node_layers(proto) -> dict[str, str]:
    """Layer of every node of an ONNX graph (see the module docstring)."""
    graph = proto.graph
    producer: dict[str, str] = {}
    for node in graph.node:
        for out in node.output:
            producer[out] = node.name
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for inp in node.input:
            consumers[inp].append(node)
    layers: dict[str, str] = {}
    deferred = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        layer = None
        scopes = [p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"]
        if node.op_type in ("Conv", "QLinearConv", "ConvInteger") or "Conv" in node.op_type:
            weight = node.input[3] if node.op_type == "QLinearConv" else (node.input[1] if len(node.input) > 1 else "")
            layer = _layer_of_text(weight)
            if ".threshold." in weight:  # sign thresholds are shared between blocks after de-duplication
                deferred.append(node)
        if layer is None and scopes:
            layer = _layer_of_text(scopes[0])
        if layer is None:
            layer = _layer_of_text(node.name)
        if layer is None:
            layer = next((layers[producer[i]] for i in node.input if i in producer and producer[i] in layers),
                         None)
        layers[node.name] = layer or "input"
    for node in deferred:  # a threshold conv belongs to the binary conv that consumes its output
        layers[node.name] = _downstream_conv_layer(node, consumers, layers) or layers[node.name]
    return layers


def _downstream_conv_layer(node, consumers, layers, depth: int = 8) -> str | None:
    frontier = [node]
    for _ in range(depth):
        nxt = [c for n in frontier for out in n.output for c in consumers.get(out, [])]
        for c in nxt:
            if "Conv" in c.op_type and layers.get(c.name) is not None:
                return layers[c.name]
        frontier = nxt
    return None


def _optimised_layers(model_path: Path, optimised_path: Path) -> dict[str, str]:
    """Layers of the optimised graph's nodes: a node keeps the layer of the exported node it came from (same
    name up to ``_token_N`` suffixes, or the same output tensor), others follow their input's producer."""
    import onnx

    exported = onnx.load(str(model_path))
    original = node_layers(exported)
    # fused and re-laid-out nodes keep the exported output tensor, or are named after it ("<tensor>_nchwc")
    by_output = {out: original[n.name] for n in exported.graph.node for out in n.output}
    optimised = onnx.load(str(optimised_path))
    producer = {out: n.name for n in optimised.graph.node for out in n.output}
    layers: dict[str, str] = {}
    for node in optimised.graph.node:
        base = _TOKEN.sub("", node.name)
        layer = original.get(base) or original.get(node.name)
        if layer is None:
            names = [*node.output, *(_NCHWC.sub("", t) for t in (*node.output, node.name))]
            layer = next((by_output[t] for t in names if t in by_output), None)
        if layer is None and "Conv" in node.op_type:
            weight = node.input[3] if node.op_type == "QLinearConv" else (node.input[1] if len(node.input) > 1 else "")
            layer = _layer_of_text(weight)
        if layer is None:
            layer = next((layers[producer[i]] for i in node.input if i in producer and producer[i] in layers),
                         None)
        layers[node.name] = layer or "input"
    return layers


def profile_onnx(model_path: str | Path, size: tuple[int, int], *, runs: int = 10, warmup: int = 2,
                 threads: int = 2, seed: int = 0) -> dict:
    """Profile ``model_path`` on a (1, C, H, W) input of ``size`` = (W, H); times in ms per run.

    Returns {"model", "size", "runs", "threads", "total_ms" (sum of node times per run), "wall_ms" (median
    session.run time), "by_op": [{op, ms, share, nodes}], "by_layer": [{layer, ms, share}],
    "by_node": [{node, op, layer, ms, share}]}, each list sorted by time, descending.
    """
    from zippypoint.ort_session import cpu_session, session_options

    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    model_path = Path(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        opts = session_options(threads)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(tmp / "profile")
        opts.optimized_model_filepath = str(tmp / "optimised.onnx")
        session = cpu_session(model_path, opts)
        inp = session.get_inputs()[0]
        channels = inp.shape[1] if isinstance(inp.shape[1], int) else 3
        feed = {inp.name: np.random.default_rng(seed).random((1, channels, size[1], size[0]), dtype=np.float32)}
        import time

        walls = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            session.run(None, feed)
            if i >= warmup:
                walls.append((time.perf_counter() - t0) * 1e3)
        trace = json.loads(Path(session.end_profiling()).read_text())
        layers = _optimised_layers(model_path, tmp / "optimised.onnx")
    return summarize_trace(trace, layers, warmup=warmup, runs=runs) | {
        "runtime": "ONNX Runtime", "model": model_path.name, "size": f"{size[0]}x{size[1]}", "threads": threads,
        "wall_ms": float(np.median(walls)),
    }


def _constant_only(node, depth: int = 6) -> bool:
    """Whether ``node`` is a Constant or computed from Constants alone (within ``depth`` ops)."""
    if node.get_type_name() == "Constant":
        return True
    if depth == 0 or not node.get_input_size():
        return False
    return all(_constant_only(v.get_node(), depth - 1) for v in node.input_values())


def _constant_names(op, seen: set | None = None) -> list[str]:
    """Friendly names of the constant-only subgraphs feeding ``op`` (its weights, their scales and zero points)."""
    seen = set() if seen is None else seen
    names = []
    for value in op.input_values():
        node = value.get_node()
        if id(node) in seen or not _constant_only(node):
            continue
        seen.add(id(node))
        names.append(node.get_friendly_name())
        if node.get_type_name() != "Constant":
            names += _constant_names(node, seen)
    return names


def _ir_layers(model) -> dict[str, str]:
    """Layer of every op of the IR that names one (module docstring); the score and location convs that the int8
    export fuses into one (``zippypoint.export.qdq_rewrites.fuse_sibling_convs``, names ending ``_fused``) are
    ``score+location``."""
    layers = {}
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        binary = _BINARY_NAME.match(name)
        if binary:
            layers[name] = binary.group(1)
        elif name.split("/")[0].endswith("_fused"):
            layers[name] = "score+location"
        elif op.get_type_name() != "Constant":
            found = next((m.group(1) for n in _constant_names(op) if (m := _LAYER.search(n))), None)
            if found:
                layers[name] = found
    return layers


def _openvino_layer(op, ir_layers: dict[str, str], previous: str) -> str:
    """Layer of a node of OpenVINO's compiled graph: that of the first IR op fused into it that names one."""
    rt = op.get_rt_info()
    names = rt["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in rt else []
    for name in [*names, op.get_friendly_name()]:
        if name in ir_layers:
            return ir_layers[name]
    return previous


def profile_openvino(model_path: str | Path, size: tuple[int, int], *, runs: int = 10, warmup: int = 2,
                     threads: int = 2, seed: int = 0) -> dict:
    """Profile the OpenVINO IR ``model_path`` as ``OpenVinoExtractor`` compiles it, on a (1, C, H, W) input of
    ``size`` = (W, H); times in ms per run. Same structure as :func:`profile_onnx` (ops are the compiled graph's
    layer types with their kernel)."""
    import time

    import openvino as ov

    from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    model_path = Path(model_path)
    extractor = OpenVinoExtractor(model_path, threads=threads).load()
    channels = extractor.in_channels
    compiled = extractor.compiled_with((1, channels, size[1], size[0]), {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    batch = np.random.default_rng(seed).random((1, channels, size[1], size[0]), dtype=np.float32)
    by_node: dict[str, float] = defaultdict(float)
    op_of: dict[str, str] = {}
    walls = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        request.infer({0: batch})
        if i < warmup:
            continue
        walls.append((time.perf_counter() - t0) * 1e3)
        for info in request.get_profiling_info():
            if info.node_type in ("Input", "Output", "Const") or info.status.name != "EXECUTED":
                continue
            by_node[info.node_name] += info.real_time.total_seconds() * 1e3 / runs
            op_of[info.node_name] = f"{info.node_type} [{info.exec_type}]"
    ir_layers = _ir_layers(ov.Core().read_model(str(model_path)))  # the file's names, before compile-time folding
    layer_of, previous = {}, "input"
    for op in compiled.get_runtime_model().get_ordered_ops():
        layer_of[op.get_friendly_name()] = previous = _openvino_layer(op, ir_layers, previous)
    return _summary(by_node, op_of, {name: layer_of.get(name, "input") for name in by_node}, runs) | {
        "runtime": "OpenVINO", "model": model_path.name, "size": f"{size[0]}x{size[1]}", "threads": threads,
        "wall_ms": float(np.median(walls)),
    }


def summarize_trace(trace: list[dict], layers: dict[str, str], *, warmup: int, runs: int) -> dict:
    """Aggregate an ONNX Runtime trace: node events inside the timed ``model_run`` events (the ones after
    ``warmup``), averaged over ``runs``."""
    run_windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace
                         if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(run_windows) < warmup + runs:
        raise ValueError(f"trace has {len(run_windows)} runs, expected {warmup + runs}")
    timed = run_windows[warmup:warmup + runs]
    by_node: dict[str, float] = defaultdict(float)
    op_of: dict[str, str] = {}
    layer_of: dict[str, str] = {}
    previous = "input"
    for e in sorted((e for e in trace if e.get("cat") == "Node"), key=lambda e: e["ts"]):
        if not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        # nodes the optimiser created without a name in the saved graph follow the node that ran before them
        layer = layers.get(name) or layers.get(_TOKEN.sub("", name)) or layer_of.get(name) or previous
        layer_of[name] = previous = layer
        if not any(start <= e["ts"] <= end for start, end in timed):
            continue
        by_node[name] += e["dur"] / 1000.0 / runs
        op_of[name] = e.get("args", {}).get("op_name", "?")
    return _summary(by_node, op_of, layer_of, runs)


def _summary(by_node: dict[str, float], op_of: dict[str, str], layer_of: dict[str, str], runs: int) -> dict:
    total = sum(by_node.values())
    share = (lambda ms: ms / total) if total > 0 else (lambda ms: 0.0)
    by_op: dict[str, list] = defaultdict(lambda: [0.0, 0])
    by_layer: dict[str, float] = defaultdict(float)
    for name, ms in by_node.items():
        by_op[op_of[name]][0] += ms
        by_op[op_of[name]][1] += 1
        by_layer[layer_of[name]] += ms
    return {
        "runs": runs,
        "total_ms": total,
        "by_op": [{"op": op, "ms": v[0], "share": share(v[0]), "nodes": v[1]}
                  for op, v in sorted(by_op.items(), key=lambda kv: -kv[1][0])],
        "by_layer": [{"layer": layer, "ms": ms, "share": share(ms)}
                     for layer, ms in sorted(by_layer.items(), key=lambda kv: -kv[1])],
        "by_node": [{"node": name, "op": op_of[name], "layer": layer_of[name], "ms": ms, "share": share(ms)}
                    for name, ms in sorted(by_node.items(), key=lambda kv: -kv[1])],
    }


def profile_markdown(profile: dict, title: str, top: int = 15) -> str:
    """``profile_<runtime>.md``: time per op type, per layer, and the ``top`` nodes."""
    lines = [
        f"# {profile.get('runtime', 'ONNX Runtime')} profile: {title}",
        "",
        f"Model `{profile['model']}` at {profile['size']}, {profile['threads']} intra-op threads, "
        f"{profile['runs']} profiled runs after warm-up. Sum of node times {profile['total_ms']:.1f} ms per run; "
        f"wall time of `session.run` {profile['wall_ms']:.1f} ms (median, profiler on).",
        "",
        "## By op type",
        "",
        "| op | ms/run | share | nodes |",
        "|---|---:|---:|---:|",
        *(f"| {r['op']} | {r['ms']:.2f} | {100 * r['share']:.1f}% | {r['nodes']} |" for r in profile["by_op"]),
        "",
        "## By layer",
        "",
        "| layer | ms/run | share |",
        "|---|---:|---:|",
        *(f"| {r['layer']} | {r['ms']:.2f} | {100 * r['share']:.1f}% |" for r in profile["by_layer"]),
        "",
        f"## Top {top} nodes",
        "",
        "| node | op | layer | ms/run | share |",
        "|---|---|---|---:|---:|",
        *(f"| `{r['node']}` | {r['op']} | {r['layer']} | {r['ms']:.2f} | {100 * r['share']:.1f}% |"
          for r in profile["by_node"][:top]),
    ]
    return "\n".join(lines) + "\n"
