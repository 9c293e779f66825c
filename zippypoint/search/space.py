"""The search space: topologies around the ZippyPoint design, as ``ModelConfig`` overrides.

Axes: input gray or RGB; stem stride 1 (paper: full-resolution input conv + space-to-depth) or 2; stage widths;
the 3x3 blocks binary (paper) or the whole network in float (``quantized=False``, the precision bound); the
descriptor head at H/4 (paper) or H/8; its width; one conv shared by the three heads or one each.
Stage depth is measured separately (docs/search.md, "Stage depth"; `ModelConfig.stage_blocks`): the grid keeps the
paper's two blocks per stage.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

WIDTHS = {
    "paper": (32, 32, 64, 128, 256),
    "slim": (16, 32, 64, 128, 192),
    "narrow": (16, 24, 48, 96, 192),
    "wide-early": (32, 48, 96, 128, 256),
}


@dataclass(frozen=True)
class Candidate:
    name: str  # short stable id, e.g. "g1-s2-slim-d8-shared-h128"
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields that differ from the paper

    def config(self):
        from zippypoint.model.config import ModelConfig

        return ModelConfig(**self.overrides)


def candidate_name(o: dict[str, Any]) -> str:
    widths = next(k for k, v in WIDTHS.items() if v == tuple(o.get("widths", WIDTHS["paper"])))
    parts = [f"c{o.get('in_channels', 3)}", f"s{o.get('stem_stride', 1)}", widths, f"d{o.get('descriptor_stride', 4)}",
             "shared" if o.get("shared_head") else "sep", f"h{o.get('head_width', 0) or 'c4'}"]
    if o.get("quantized") is False:
        parts.append("fp")
    return "-".join(parts)


def search_space(*, include_float: bool = True) -> list[Candidate]:
    """Every candidate of the grid (the paper topology first)."""
    out: list[Candidate] = []
    grid = itertools.product((3, 1), (1, 2), WIDTHS, (4, 8), (False, True), (0, 128))
    for channels, stem, widths, dstride, shared, head in grid:
        if dstride == 4 and head:  # the H/4 head's width is tied to the pixel shuffle; vary it at H/8 only
            continue
        o: dict[str, Any] = {}
        if channels != 3:
            o["in_channels"] = channels
        if stem != 1:
            o["stem_stride"] = stem
        if widths != "paper":
            o["widths"] = WIDTHS[widths]
        if dstride != 4:
            o["descriptor_stride"] = dstride
        if shared:
            o["shared_head"] = True
        if head:
            o["head_width"] = head
        out.append(Candidate(candidate_name(o), o))
    if include_float:  # precision axis: the paper and the leanest topology with every layer in float
        for o in ({"quantized": False}, {"quantized": False, "in_channels": 1, "stem_stride": 2,
                                          "descriptor_stride": 8, "shared_head": True}):
            out.append(Candidate(candidate_name(o), o))
    return out


def graph_features(candidate: Candidate, size: tuple[int, int] = (640, 480)) -> dict[str, float]:
    """The feature vector the clustering uses: params, MACs per precision (binary / int8 / float), depth, the
    descriptor map size at ``size`` (W, H). Float layers are those the int8 export keeps in fp32 (input conv, a
    stride-1 stem's down1, score and location outputs) plus every layer of a float candidate. Needs torch.

    Every layer is a convolution whose output scales with the pixel count, so the network runs (in float: the
    same MACs) on a 64x48 input and the counts are scaled to ``size``."""
    import dataclasses

    import torch
    from torch import nn

    from zippypoint.model.network import ZippyPointNet
    from zippypoint.quant.layers import BinaryConv2d

    cfg = candidate.config()
    net = ZippyPointNet(dataclasses.replace(cfg, quantized=False)).eval()
    small = (64, 48)
    scale = size[0] * size[1] / (small[0] * small[1])
    fp32_names = {"conv_in", "score_out", "loc_out"} | ({"down1"} if cfg.stem_stride == 1 else set())
    macs = {"binary": 0, "int8": 0, "float": 0}
    depth = [0]

    def hook_for(name: str, module: nn.Conv2d):
        def hook(_m, _inp, out):
            n = out.numel() * module.weight[0].numel()
            if isinstance(module, BinaryConv2d) and cfg.quantized:
                kind = "binary"
            elif not cfg.quantized or name.split(".")[0] in fp32_names:
                kind = "float"
            else:
                kind = "int8"
            macs[kind] += n
            depth[0] += 1
        return hook

    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        out = net(torch.zeros(1, cfg.in_channels, small[1], small[0]))
    for h in handles:
        h.remove()
    g = scale / 1e9
    return {"params": float(sum(p.numel() for p in net.parameters())), "gmac_binary": macs["binary"] * g,
            "gmac_int8": macs["int8"] * g, "gmac_float": macs["float"] * g,
            "gmac": sum(macs.values()) * g, "convs": float(depth[0]),
            "desc_map_mfloats": out["descriptors"].numel() * scale / 1e6}
