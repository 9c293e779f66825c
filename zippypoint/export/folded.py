"""A deployment view of ZippyPoint: BatchNorm folded into the convolutions, quantisers made explicit.

The view computes the same function as the network in eval mode, written with the few ONNX ops an integer
runtime can map onto its kernels:

- ``conv + BN (+ hard-swish)``: one conv whose weights are the fake-quantised int8 weights times the BN scale
  (per output channel, so the int8 codes are unchanged) and whose bias is the BN shift;
- binary branch ``BN(ReLU(binconv(sign(x))))``: with ``a, b`` the BN scale and shift,
  ``a*relu(z) + b = max(a*z + b, b)`` for ``a > 0`` and ``min(a*z + b, b)`` for ``a < 0``, so the BN folds into
  the binary conv (weights ``±a``, still one int8 code each) followed by a per-channel Max/Min;
- every activation fake-quantiser becomes :class:`FixedRangeQuant`: a clamp to its fixed range (``Clip`` in
  ONNX, which the int8 exporter turns into a QuantizeLinear with the quantiser's own scale), or, with
  ``rounding=True``, the fake-quant itself (used to check that the folding is exact).
"""

from __future__ import annotations

import torch
from torch import nn

from zippypoint.model.network import (
    BinaryResidualBlock,
    ConvBNAct,
    Downsample,
    ZippyPointNet,
    backbone_features,
    binary_block_inputs,
    head_maps,
    normalised_input,
)
from zippypoint.quant.quantizers import ActivationQuantizer, fake_quant_ste

_BIG = torch.finfo(torch.float32).max


class FixedRangeQuant(nn.Module):
    """An 8-bit fake-quantiser with a fixed grid: levels ``k*step``, k in [qmin, qmax] (255 steps)."""

    def __init__(self, step: float, qmin: int, qmax: int, rounding: bool) -> None:
        super().__init__()
        self.step, self.qmin, self.qmax = float(step), int(qmin), int(qmax)
        self.rounding = rounding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rounding:
            return fake_quant_ste(x, self.step, self.qmin, self.qmax)
        return torch.clamp(x, self.qmin * self.step, self.qmax * self.step)


def _quant(q: ActivationQuantizer | None, rounding: bool) -> nn.Module:
    if q is None or not q.enabled:
        return nn.Identity()
    if q.bits != 8:
        raise ValueError(f"only 8-bit activation quantisers can be exported, got {q.bits} bits")
    return FixedRangeQuant(q.step, q.qmin_int, q.qmax_int, rounding)


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``a*x + b`` per channel: returns (a, b), each (C,)."""
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return a, bn.bias - bn.running_mean * a


def _effective_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The weights the conv actually uses (after its weight quantiser, if any)."""
    quant = getattr(conv, "weight_quant", None)
    return quant(conv.weight) if quant is not None else conv.weight


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> nn.Conv2d:
    weight = _effective_weight(conv).detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0])
    if bn is not None:
        a, b = (t.detach() for t in bn_affine(bn))
        weight = weight * a.view(-1, 1, 1, 1)
        bias = bias * a + b
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, bias=True)
    out.weight.data.copy_(weight)
    out.bias.data.copy_(bias)
    return out


class FoldedConvBNAct(nn.Module):
    """conv (BN folded) -> optional hard-swish (with its input quantiser) -> fixed-range quant."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, act: nn.Module,
                 quant: ActivationQuantizer | None, rounding: bool,
                 act_in_quant: ActivationQuantizer | None = None) -> None:
        super().__init__()
        self.conv = _folded_conv(conv, bn)
        self.act_in = _quant(act_in_quant, rounding)
        self.act = act
        self.quant = _quant(quant, rounding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.act(self.act_in(self.conv(x))))


class FoldedBinaryBranch(nn.Module):
    """``BN(ReLU(binconv(sign(x))))`` as one conv with BN-scaled ±1 weights plus a per-channel Max/Min.

    The binary conv is rewritten on ``n = [x < 0]`` in {0, 1}: ``sign = 1 - 2n`` and padding with sign +1 is
    padding n with 0, so ``conv_pad1(sign, w) = conv_pad0(n, -2w) + sum(w)`` (no Pad op, zeros are exact).

    ``input_step``: the fake-quant step of the branch input. When given (binary blocks only), ``n`` is
    computed as ``clip(-4/step * x - 2, 0, 1)`` (a depthwise 1x1 conv and a clip): on the input's grid
    ``x = k*step`` this is exactly ``[k < 0]``, and an integer runtime runs it as an int8 conv whose output
    saturates to {0, 1}; otherwise ``n`` is a float comparison.
    """

    def __init__(self, block: BinaryResidualBlock, input_step: float | None = None) -> None:
        super().__init__()
        conv = block.conv
        self.binary = conv.binary
        self.pad = conv.pad
        a, b = (t.detach() for t in bn_affine(block.bn))
        weight = _effective_weight(conv).detach()
        # a == 0: the branch is the constant b; tiny weights keep per-channel int8 scales non-zero
        scale = torch.where(a == 0, torch.full_like(a, 1e-6), a).view(-1, 1, 1, 1)
        bias = b.clone()
        self.threshold: nn.Conv2d | None = None
        if self.binary:
            bias = bias + (scale * weight).sum(dim=(1, 2, 3))
            weight = -2.0 * weight
            if input_step is not None:
                cin = weight.shape[1]
                self.threshold = nn.Conv2d(cin, cin, 1, groups=cin, bias=True)
                self.threshold.weight.data.fill_(-4.0 / input_step)
                self.threshold.bias.data.fill_(-2.0)
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], padding=self.pad, bias=True)
        self.conv.weight.data.copy_(weight * scale)
        self.conv.bias.data.copy_(bias)
        big = torch.full_like(b, _BIG)
        lo = torch.where(a > 0, b, -big)
        hi = torch.where(a < 0, b, big)
        self.register_buffer("lo", torch.where(a == 0, b, lo).view(1, -1, 1, 1))
        self.register_buffer("hi", torch.where(a == 0, b, hi).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.threshold is not None:
            x = torch.clamp(self.threshold(x), 0.0, 1.0)
        elif self.binary:
            x = (x < 0).to(x.dtype)  # sign(0) = +1 -> n = 0
        v = self.conv(x)
        return torch.minimum(torch.maximum(v, self.lo), self.hi)


class FoldedBinaryBlock(nn.Module):
    def __init__(self, block: BinaryResidualBlock, rounding: bool, input_step: float | None = None) -> None:
        super().__init__()
        self.branch = FoldedBinaryBranch(block, input_step)
        self.branch_quant = _quant(block.branch_quant, rounding)
        if isinstance(block.shortcut, nn.Identity):
            self.shortcut = nn.Identity()
        else:
            conv, bn, quant = block.shortcut
            self.shortcut = FoldedConvBNAct(conv, bn, nn.Identity(), quant, rounding)
        self.add_quant = _quant(block.add_quant, rounding)
        self.post_act = nn.Hardswish() if block.post_act is not None else nn.Identity()
        self.post_quant = _quant(block.post_quant, rounding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch_quant(self.branch(x))
        return self.post_quant(self.post_act(self.add_quant(self.shortcut(x) + y)))


def _fold_cba(m: ConvBNAct, rounding: bool) -> FoldedConvBNAct:
    act = nn.Hardswish() if isinstance(m.act, nn.Hardswish) else nn.Identity()
    return FoldedConvBNAct(m.conv, m.bn, act, m.out_quant, rounding, m.act_in_quant)


def _space_to_depth_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv1x1(pixel_unshuffle(x, 2))`` as one 2x2 stride-2 conv on ``x`` (same weights, no data shuffle).

    pixel_unshuffle puts input channel c, offset (i, j) of each 2x2 block at channel ``4c + 2i + j``.
    """
    w = conv.weight
    cout, cin4 = w.shape[:2]
    out = nn.Conv2d(cin4 // 4, cout, 2, stride=2, bias=conv.bias is not None)
    out.weight.data.copy_(w.reshape(cout, cin4 // 4, 2, 2))
    if conv.bias is not None:
        out.bias.data.copy_(conv.bias)
    return out


class FoldedDownsample(nn.Module):
    """space-to-depth(2) + conv1x1 + BN + hard-swish as a 2x2 stride-2 conv (transposes cost more than the conv)."""

    def __init__(self, m: Downsample, rounding: bool) -> None:
        super().__init__()
        self.proj = _fold_cba(m.proj, rounding)
        self.proj.conv = _space_to_depth_conv(self.proj.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def _output_quant(module: nn.Module) -> ActivationQuantizer:
    """The fake-quantiser of ``module``'s output: a binary block's last one, a conv's or a downsample's."""
    if isinstance(module, BinaryResidualBlock):
        return module.post_quant if module.post_quant is not None else module.add_quant
    return module.proj.out_quant if isinstance(module, Downsample) else module.out_quant


class FoldedZippyPoint(nn.Module):
    """Eval-mode ZippyPoint with BN folded; same inputs and output dict as :class:`ZippyPointNet`.

    ``rounding=True``: fake-quantisers round (equals the network up to float summation order);
    ``rounding=False``: they only clamp, leaving the rounding to an integer runtime's QuantizeLinear.
    ``sign_as_threshold``: binary-conv inputs as a saturating threshold conv (see :class:`FoldedBinaryBranch`).
    """

    def __init__(self, model: ZippyPointNet, rounding: bool = True, sign_as_threshold: bool = False) -> None:
        super().__init__()
        if model.training:
            raise ValueError("fold an eval-mode model (call model.eval() first): BatchNorm must use running stats")
        self.config = model.config
        with torch.no_grad():
            self.conv_in = _fold_cba(model.conv_in, rounding)
            self.down1 = FoldedDownsample(model.down1, rounding) if model.down1 is not None else None
            self.down2 = FoldedDownsample(model.down2, rounding)
            self.down3 = FoldedDownsample(model.down3, rounding)
            for name in (f"block{i}{ab}" for i in range(1, 5) for ab in "ab"):  # a stage may have fewer
                setattr(self, name, None)
            for name, source in binary_block_inputs(model):
                quant = _output_quant(source)
                step = quant.step if sign_as_threshold and quant.enabled else None
                setattr(self, name, FoldedBinaryBlock(getattr(model, name), rounding, step))
            for name in ("head_conv", "score_conv", "loc_conv", "desc_conv1", "desc_conv2", "desc_conv3"):
                if hasattr(model, name):  # the lean presets leave some out (shared head, descriptors at H/8)
                    setattr(self, name, _fold_cba(getattr(model, name), rounding))
            self.score_out = _folded_conv(model.score_out, None)
            self.loc_out = _folded_conv(model.loc_out, None)
            self.desc_out = _folded_conv(model.desc_out, None)
        self.eval()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = normalised_input(self, image)
        scores, offsets, desc = head_maps(self, backbone_features(self, x))
        return {"scores": zero_border(scores), "keypoints": offsets_to_pixels(offsets), "descriptors": desc}


def zero_border(scores: torch.Tensor) -> torch.Tensor:
    """``network.zero_border_cells`` written with shape-derived ranges only (traces with dynamic H, W)."""
    h, w = scores.shape[-2:]
    rows = torch.arange(h, device=scores.device)
    cols = torch.arange(w, device=scores.device)
    inner_r = (rows >= 1) & (rows < rows[-1:])
    inner_c = (cols >= 1) & (cols < cols[-1:])
    mask = (inner_r.view(h, 1) & inner_c.view(1, w)).to(scores.dtype)
    return scores * mask


def offsets_to_pixels(offsets: torch.Tensor) -> torch.Tensor:
    """``network.cell_offsets_to_pixels`` for an image of exactly 8x the cell grid, trace-friendly.

    x = 8*c + 3.5 + 7*t clipped to [0, 8*w - 1] (the image is 8*w pixels wide), same for y.
    """
    h, w = offsets.shape[-2:]
    cx = torch.arange(w, dtype=offsets.dtype, device=offsets.device) * 8
    cy = torch.arange(h, dtype=offsets.dtype, device=offsets.device) * 8
    x = (cx.view(1, w) + 3.5 + 7.0 * offsets[:, 0]).clamp_min(0.0)
    y = (cy.view(h, 1) + 3.5 + 7.0 * offsets[:, 1]).clamp_min(0.0)
    x = torch.minimum(x, cx[-1:] + 7.0)
    y = torch.minimum(y, cy[-1:] + 7.0)
    return torch.stack([x, y], dim=1)
