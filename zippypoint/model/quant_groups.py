"""Quantiser groups of the network, ordered from input to output (for ANA annealing schedules)."""

from __future__ import annotations

from torch import nn

from zippypoint.quant.quantizers import ActivationQuantizer, SignQuantizer


def quantizer_groups(model: nn.Module, targets: str = "binary") -> list[tuple[str, list[nn.Module]]]:
    """One group per top-level block (in definition order = input to output).

    ``targets``: "binary" -> the sign quantisers (binary-conv inputs and weights) only;
    "all" -> sign quantisers and int8 activation fake-quants. Int8 weight quantisers are never
    annealed. Blocks without a matching enabled quantiser are left out.
    """
    kinds: tuple[type, ...] = (SignQuantizer,) if targets == "binary" else (SignQuantizer, ActivationQuantizer)
    if targets not in ("binary", "all"):
        raise ValueError(f"targets must be 'binary' or 'all', got {targets!r}")
    groups = []
    for name, child in model.named_children():
        members = [m for m in child.modules() if isinstance(m, kinds) and m.enabled]
        if members:
            groups.append((name, members))
    return groups
