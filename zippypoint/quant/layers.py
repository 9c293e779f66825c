"""Convolutions with quantised weights: int8 per-channel convs and binary convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zippypoint.quant.quantizers import SignQuantizer, WeightQuantizer


class Int8Conv2d(nn.Conv2d):
    """Conv2d whose weights are fake-quantised per output channel to int8 (when ``quantized``)."""

    def __init__(self, *args, quantized: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight_quant = WeightQuantizer(enabled=quantized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight_quant(self.weight), self.bias)


class BinaryConv2d(nn.Conv2d):
    """Binary convolution: sign(input) (*) sign(latent weights), padded with +1, no scale factor.

    Padding with +1 keeps every value seen by the kernel in {-1, +1}, so the layer is an exact
    XNOR-popcount. The latent weights must stay in [-1, 1]: call :func:`clip_latent_weights`
    after each optimiser step. With ``binary=False`` it is a plain conv with zero padding (the
    full-precision counterpart with identical parameters).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, binary: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=0, bias=False)
        self.binary = binary
        self.pad = kernel_size // 2
        self.input_quant = SignQuantizer(enabled=binary)
        self.weight_quant = SignQuantizer(enabled=binary)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        if self.binary:
            x = F.pad(self.input_quant(x), (p, p, p, p), value=1.0)
        else:
            x = F.pad(x, (p, p, p, p), value=0.0)
        return F.conv2d(x, self.weight_quant(self.weight))


@torch.no_grad()
def clip_latent_weights(model: nn.Module) -> None:
    """Clip the latent weights of every binary conv to [-1, 1] (call after each optimiser step)."""
    for module in model.modules():
        if isinstance(module, BinaryConv2d) and module.binary:
            module.weight.clamp_(-1.0, 1.0)
