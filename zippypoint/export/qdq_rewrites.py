"""Rewrites of a QDQ model after ``quantize_static``: exact, and each removes fp32 work or restores a rounding.

- :func:`quantize_fp32_inputs`: fp32-kept convs read their input through its fake-quant grid, as in PyTorch;
- :func:`integer_clamps`: the binary branches' per-channel Max/Min run on uint8 codes;
- :func:`float_adds`: additions of two different grids run in float, as in PyTorch;
- :func:`fuse_sibling_convs`: fp32 convs reading the same tensor run as one conv and a split.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def _links(graph) -> tuple[dict, dict[str, list]]:
    """(tensor -> producing node, tensor -> consuming nodes) of an ONNX graph."""
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            users[i].append(n)
    return producer, users


def quantize_fp32_inputs(proto, overrides: dict[str, list[dict]]) -> int:
    """Give nodes left in fp32 (excluded convs) the design quantisation of their inputs.

    quantize_static only quantises a tensor for quantised consumers, so an fp32 conv reading a fake-quant
    output would see it unrounded. Insert the missing QuantizeLinear/DequantizeLinear pair (exactly the
    fake-quant, by the design grid). Returns the number of pairs inserted.
    """
    from onnx import helper, numpy_helper

    produced_by = {o: n for n in proto.graph.node for o in n.output}
    inserted: dict[str, str] = {}
    new_nodes = []
    for node in proto.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            grid = overrides.get(name, [{}])[0]
            if "scale" not in grid or produced_by.get(name) is None:
                continue
            if name not in inserted:
                scale, zp = f"{name}_fp32_scale", f"{name}_fp32_zero_point"
                proto.graph.initializer.extend([numpy_helper.from_array(grid["scale"], scale),
                                                numpy_helper.from_array(grid["zero_point"], zp)])
                new_nodes += [helper.make_node("QuantizeLinear", [name, scale, zp], [f"{name}_fp32_q"],
                                               name=f"{name}_fp32_QuantizeLinear"),
                              helper.make_node("DequantizeLinear", [f"{name}_fp32_q", scale, zp], [f"{name}_fp32_dq"],
                                               name=f"{name}_fp32_DequantizeLinear")]
                inserted[name] = f"{name}_fp32_dq"
            node.input[i] = inserted[name]
    if not new_nodes:
        return 0
    # keep a topological order: each new pair right after its producer
    nodes = list(proto.graph.node)
    for q, dq in zip(new_nodes[::2], new_nodes[1::2], strict=True):
        at = next(k for k, n in enumerate(nodes) if q.input[0] in n.output) + 1
        nodes[at:at] = [q, dq]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return len(inserted)


def integer_clamps(proto) -> int:
    """Run the binary branches' per-channel Max/Min on the uint8 codes instead of dequantised floats.

    Pattern ``Q(v) -> DQ -> Max(lo) -> Min(hi) -> Clip -> Q(y) -> DQ`` with the same grid for v and y: rounding
    is monotone, so ``Q(min(max(v, lo), hi)) = min(max(Q(v), Q(lo)), Q(hi))`` exactly. Returns the rewrites.
    """
    from onnx import numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    producer, users = _links(g)

    def only(tensor, op):
        u = users.get(tensor, [])
        return u[0] if len(u) == 1 and u[0].op_type == op else None

    def value(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    removed, retyped, count = set(), set(), 0
    for mx in [n for n in g.node if n.op_type == "Max"]:
        dq_v = producer.get(mx.input[0])
        q_v = producer.get(dq_v.input[0]) if dq_v is not None and dq_v.op_type == "DequantizeLinear" else None
        mn = only(mx.output[0], "Min")
        clip = mn and only(mn.output[0], "Clip")
        q_y = clip and only(clip.output[0], "QuantizeLinear")
        if q_v is None or q_v.op_type != "QuantizeLinear" or q_y is None or len(users[q_v.output[0]]) != 1:
            continue
        scale, zp = value(q_v.input[1]), value(q_v.input[2])
        if scale is None or zp is None or value(q_y.input[1]) != scale or value(q_y.input[2]) != zp \
                or value(mx.input[1]) is None or value(mn.input[1]) is None:
            continue
        for node, bound in ((mx, mx.input[1]), (mn, mn.input[1])):
            codes = np.clip(np.rint(value(bound).astype(np.float64) / float(scale)) + int(zp), 0, 255)
            name = f"{bound}_uint8_{count}"
            g.initializer.append(numpy_helper.from_array(codes.astype(np.uint8), name))
            node.input[1] = name
        mx.input[0] = q_v.output[0]
        for user in users[q_y.output[0]]:
            user.input[:] = [mn.output[0] if i == q_y.output[0] else i for i in user.input]
        removed |= {dq_v.name, clip.name, q_y.name}
        retyped |= {mx.output[0], mn.output[0]}
        count += 1
    kept_info = [v for v in g.value_info if v.name not in retyped]  # now uint8; shape inference redoes them
    del g.value_info[:]
    g.value_info.extend(kept_info)
    kept = [n for n in g.node if n.name not in removed]
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in g.node for i in n.input}
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    return count


def float_adds(proto) -> int:
    """Run in float the quantised additions whose inputs are on different grids than the output.

    ``a + b`` with ``a`` on a finer grid than the sum (block1a adds the ±1 grid of down1 to a ±6 grid) has
    exact ties (a half output level), which PyTorch rounds from the float sum and ONNX Runtime's integer
    ``QLinearAdd`` from its own fixed-point arithmetic: they break 1 in 20 outputs differently. ``Sum`` is not
    fused into ``QLinearAdd``, so ``DQ -> Sum -> Q`` computes the float sum and rounds it like PyTorch.
    Returns the number of additions rewritten.
    """
    from onnx import numpy_helper

    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer, users = _links(g)

    def grid(node):
        return (float(inits[node.input[1]]), int(inits[node.input[2]])) if node.input[1] in inits else None

    count = 0
    for add in [n for n in g.node if n.op_type == "Add"]:
        ins = [producer.get(i) for i in add.input]
        outs = users.get(add.output[0], [])
        if len(ins) != 2 or any(n is None or n.op_type != "DequantizeLinear" for n in ins) \
                or len(outs) != 1 or outs[0].op_type != "QuantizeLinear":
            continue
        out_grid = grid(outs[0])
        if out_grid is not None and any(grid(n) != out_grid for n in ins):
            add.op_type = "Sum"
            count += 1
    return count


def fuse_sibling_convs(proto) -> int:
    """Merge fp32 convs that read the same tensor with the same attributes (the score and location outputs of a
    shared head) into one conv whose output is split back into the original tensors: the same arithmetic, one
    kernel launch instead of two (a 1- or 2-channel fp32 conv costs a runtime about as much as a 3-channel one).
    Returns the number of convs removed."""
    from onnx import helper, numpy_helper

    init = {t.name: t for t in proto.graph.initializer}
    groups: dict[tuple, list] = defaultdict(list)
    for n in proto.graph.node:
        if n.op_type == "Conv" and len(n.input) == 3 and n.input[1] in init and n.input[2] in init:
            attrs = tuple(sorted((a.name, str(helper.get_attribute_value(a))) for a in n.attribute))
            groups[(n.input[0], attrs)].append(n)
    removed = 0
    for (_, _), convs in groups.items():
        if len(convs) < 2:
            continue
        weights = [numpy_helper.to_array(init[c.input[1]]) for c in convs]
        biases = [numpy_helper.to_array(init[c.input[2]]) for c in convs]
        if len({w.shape[1:] for w in weights}) != 1 or len({w.dtype for w in weights}) != 1:
            continue
        first = convs[0]
        name = f"{first.name}_fused"
        proto.graph.initializer.extend([numpy_helper.from_array(np.concatenate(weights), f"{name}_W"),
                                        numpy_helper.from_array(np.concatenate(biases), f"{name}_B"),
                                        numpy_helper.from_array(np.array([w.shape[0] for w in weights], np.int64),
                                                                f"{name}_split")])
        conv = helper.make_node("Conv", [first.input[0], f"{name}_W", f"{name}_B"], [f"{name}_out"], name=name)
        conv.attribute.extend(first.attribute)
        split = helper.make_node("Split", [f"{name}_out", f"{name}_split"], [c.output[0] for c in convs],
                                 name=f"{name}_split", axis=1)
        nodes = list(proto.graph.node)
        at = min(nodes.index(c) for c in convs)
        nodes = [n for n in nodes if n not in convs]
        nodes[at:at] = [conv, split]
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        removed += len(convs) - 1
    return removed
