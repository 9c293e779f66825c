"""Parameter and multiply-accumulate counts per preset (conv layers; BN and activations excluded)."""

from __future__ import annotations


def count_complexity(model, height: int, width: int) -> dict[str, float]:
    """Returns params, binary params, MACs and binary MACs of one forward pass at ``height x width``."""
    import torch
    from torch import nn

    from zippypoint.quant.layers import BinaryConv2d

    macs = {"total": 0, "binary": 0}

    def hook(module, inputs, output):
        k = module.weight[0].numel()  # cin/groups * kh * kw
        n = output.numel() // output.shape[0] * k
        macs["total"] += n
        if isinstance(module, BinaryConv2d) and module.binary:
            macs["binary"] += n

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.config.in_channels, height, width))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    binary_params = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, BinaryConv2d) and m.binary
    )
    return {"params": params, "binary_params": binary_params, "macs": macs["total"], "binary_macs": macs["binary"]}
