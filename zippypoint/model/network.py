"""The ZippyPoint network (docs/design.md §1): a binary/int8 mixed-precision keypoint and descriptor net.

Input: float images (B, C, H, W) in [0, 1], H and W multiples of 8.
Output dict (dense maps):
- ``scores``      (B, 1, H/8, W/8) in [0, 1]; the outermost ring of cells is 0;
- ``keypoints``   (B, 2, H/8, W/8) x, y in pixels (pixel centres at integer coordinates);
- ``descriptors`` (B, 256, H/4, W/4) raw descriptor map (top-k binarised after sampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zippypoint.model.config import ModelConfig
from zippypoint.quant.layers import BinaryConv2d, Int8Conv2d
from zippypoint.quant.quantizers import ActivationQuantizer, HardSwishInputQuantizer


class GridHardswish(nn.Hardswish):
    """Hard-swish as ``x * clamp(x/6 + 1/2, 0, 1)``, the form ONNX Runtime's HardSwish evaluates.

    The same function as ``nn.Hardswish``; the form matters when the input sits on a quantisation grid: for
    ``x >= 3`` it returns ``x`` exactly, and on the ``3/85`` grid a quarter of those values are exact ties
    of the ``12/255`` output grid (``x = 3k/85`` is ``3k/4`` output steps), which PyTorch's
    ``x * relu6(x + 3) / 6`` can push an ulp to the other side.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)


class ConvBNAct(nn.Module):
    """int8 conv + BatchNorm + optional hard-swish, followed by activation fake-quant.

    With hard-swish in the int8 layers, the conv output is first quantised on the grid of an integer
    runtime (``act_in_quant``, see :class:`~zippypoint.quant.quantizers.HardSwishInputQuantizer`).
    """

    def __init__(self, cfg: ModelConfig, cin: int, cout: int, k: int, qmax: float, act: bool = True,
                 stride: int = 1) -> None:
        super().__init__()
        q = cfg.quantized
        self.conv = Int8Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, quantized=q)
        self.bn = nn.BatchNorm2d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        # the ±1 layers (conv_in, down1) deploy in fp32: their hard-swish reads the float conv output
        grid = q and act and cfg.hswish_input_quant and qmax == cfg.act_range
        self.act_in_quant = HardSwishInputQuantizer(qmax) if grid else None
        self.act = (GridHardswish() if grid else nn.Hardswish()) if act else nn.Identity()
        self.out_quant = ActivationQuantizer(qmax, enabled=q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if self.act_in_quant is not None:
            y = self.act_in_quant(y)
        return self.out_quant(self.act(y))


class Downsample(nn.Module):
    """space-to-depth(2) then int8 conv1x1 + BN + hard-swish."""

    def __init__(self, cfg: ModelConfig, cin: int, cout: int, qmax: float) -> None:
        super().__init__()
        self.proj = ConvBNAct(cfg, cin * 4, cout, 1, qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.pixel_unshuffle(x, 2))


class BinaryResidualBlock(nn.Module):
    """y = BN(ReLU(binconv(sign(x)))); out = FQ(x + FQ(y)); optional hard-swish (+FQ) after the add.

    With ``cin != cout`` the shortcut is an int8 1x1 projection with BatchNorm.
    """

    def __init__(self, cfg: ModelConfig, cin: int, cout: int, post_act: bool) -> None:
        super().__init__()
        q, qmax = cfg.quantized, cfg.act_range
        self.conv = BinaryConv2d(cin, cout, 3, binary=q)
        self.bn = nn.BatchNorm2d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.branch_quant = ActivationQuantizer(qmax, enabled=q)
        if cin != cout:
            self.shortcut = nn.Sequential(
                Int8Conv2d(cin, cout, 1, bias=False, quantized=q),
                nn.BatchNorm2d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
                ActivationQuantizer(qmax, enabled=q),
            )
        else:
            self.shortcut = nn.Identity()
        self.add_quant = ActivationQuantizer(qmax, enabled=q)
        self.post_act = nn.Hardswish() if post_act else None
        self.post_quant = ActivationQuantizer(qmax, enabled=q) if post_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch_quant(self.bn(F.relu(self.conv(x))))
        out = self.add_quant(self.shortcut(x) + y)
        if self.post_act is not None:
            out = self.post_quant(self.post_act(out))
        return out


class ZippyPointNet(nn.Module):
    """The ZippyPoint topology. Builds random weights; never touches disk (see ``load_weights``)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        c0, c1, c2, c3, c4 = cfg.widths
        q, r1, r = cfg.quantized, cfg.act_range_early, cfg.act_range
        if cfg.stem_stride == 1:
            self.conv_in = ConvBNAct(cfg, cfg.in_channels, c0, 3, r1)
            self.down1 = Downsample(cfg, c0, c1, r1)
        else:  # lean stem: the input conv itself halves the resolution (a quarter of its cost, no down1)
            self.conv_in = ConvBNAct(cfg, cfg.in_channels, c1, 3, r1, stride=2)
            self.down1 = None
        n1, n2, n3, n4 = cfg.stage_blocks
        # a one-block stage has no "a" block (None); its "b" block takes the stage input
        self.block1a = BinaryResidualBlock(cfg, c1, c1, post_act=False) if n1 == 2 else None
        self.block1b = BinaryResidualBlock(cfg, c1, c1, post_act=True) if n1 else None
        self.down2 = Downsample(cfg, c1, c2, r)
        self.block2a = BinaryResidualBlock(cfg, c2, c2, post_act=False) if n2 == 2 else None
        self.block2b = BinaryResidualBlock(cfg, c2, c2, post_act=True)
        self.down3 = Downsample(cfg, c2, c3, r)
        self.block3a = BinaryResidualBlock(cfg, c3, c3, post_act=False) if n3 == 2 else None
        self.block3b = BinaryResidualBlock(cfg, c3, c3, post_act=True)
        self.block4a = BinaryResidualBlock(cfg, c3, c4, post_act=False) if n4 == 2 else None
        self.block4b = BinaryResidualBlock(cfg, c4 if n4 == 2 else c3, c4, post_act=True)
        hw = cfg.head_width or c4
        if cfg.shared_head:  # one int8 conv for all three heads
            self.head_conv = ConvBNAct(cfg, c4, hw, 3, r)
        # score head: int8 conv + BN + hswish, then an fp32 conv with bias
        if not cfg.shared_head:
            self.score_conv = ConvBNAct(cfg, c4, hw, 3, r)
        self.score_out = nn.Conv2d(hw, 1, 3, padding=1)
        # location head
        if not cfg.shared_head:
            self.loc_conv = ConvBNAct(cfg, c4, hw, 3, r)
        self.loc_out = nn.Conv2d(hw, 2, 3, padding=1)
        # descriptor head (upsampled to H/4 by pixel shuffle, or at H/8)
        d = cfg.descriptor_dim
        if not cfg.shared_head:
            self.desc_conv1 = ConvBNAct(cfg, c4, hw, 3, r)
        k = cfg.descriptor_kernel
        if cfg.descriptor_stride == 4:
            self.desc_conv2 = ConvBNAct(cfg, hw, 2 * c4, 3, r, act=False)
            self.desc_conv3 = ConvBNAct(cfg, 2 * c4 // 4, d, 3, r)
            self.desc_out = Int8Conv2d(d, d, k, padding=k // 2, bias=True, quantized=q)
        elif cfg.descriptor_rank:  # low rank: a k x k conv to the rank, then a 1x1 conv to d
            self.desc_conv2 = ConvBNAct(cfg, hw, cfg.descriptor_rank, k, r, act=False)
            self.desc_out = Int8Conv2d(cfg.descriptor_rank, d, 1, bias=True, quantized=q)
        else:
            self.desc_out = Int8Conv2d(hw, d, k, padding=k // 2, bias=True, quantized=q)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        return backbone_features(self, x)

    def check_input(self, image: torch.Tensor) -> None:
        if not torch.is_tensor(image):
            raise TypeError(f"expected a torch.Tensor, got {type(image).__name__}")
        if image.dim() != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.config.in_channels}, H, W), got {tuple(image.shape)}"
            )
        h, w = image.shape[-2:]
        if h % 8 or w % 8 or h < 24 or w < 24:
            raise ValueError(f"height and width must be multiples of 8 and >= 24, got {h}x{w}")
        if not image.is_floating_point():
            raise TypeError(f"expected a floating-point image in [0, 1], got dtype {image.dtype}")

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(image)
        x = normalised_input(self, image)
        scores, offsets, desc = head_maps(self, self.backbone(x))
        return {
            "scores": zero_border_cells(scores),
            "keypoints": cell_offsets_to_pixels(offsets, image.shape[-2], image.shape[-1]),
            "descriptors": desc,
        }


def normalised_input(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The network's input transform: images in [0, 1] centred on 0.5 and scaled by ``config.input_scale`` (every
    pass that feeds ``conv_in`` outside ``forward`` starts here)."""
    return (image - 0.5) * net.config.input_scale


def backbone_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The backbone stages of ``net`` (the network or its folded view, which name their modules alike) on the
    normalised input ``x``."""
    x = net.conv_in(x)
    if net.down1 is not None:
        x = net.down1(x)
    x = _stage(net, 1, x)
    x = _stage(net, 2, net.down2(x))
    x = _stage(net, 3, net.down3(x))
    return _stage(net, 4, x)


def _stage(net: nn.Module, i: int, x: torch.Tensor) -> torch.Tensor:
    first, second = getattr(net, f"block{i}a"), getattr(net, f"block{i}b")
    if second is None:  # a stage without blocks (stage 1 of ``stage_blocks[0] = 0``)
        return x
    return second(first(x) if first is not None else x)


def binary_block_inputs(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, the module whose output feeds it) of every binary residual block of ``net``, in network order
    (``block1a`` ... ``block4b``; one-block stages leave their "a" out)."""
    previous = net.down1 if net.down1 is not None else net.conv_in
    out = []
    for i in range(1, 5):
        if i in (2, 3):
            previous = getattr(net, f"down{i}")
        for name in (f"block{i}a", f"block{i}b"):
            block = getattr(net, name)
            if block is not None:
                out.append((name, previous))
                previous = block
    return out


def head_maps(net: nn.Module, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores in [0, 1], tanh offsets, raw descriptor map) of the heads of ``net`` (the network or its folded
    view, which name their modules alike) on the backbone features ``feat``."""
    cfg = net.config
    if cfg.shared_head:
        s_in = l_in = d_in = net.head_conv(feat)
    else:
        s_in, l_in, d_in = net.score_conv(feat), net.loc_conv(feat), net.desc_conv1(feat)
    scores = torch.sigmoid(net.score_out(s_in))
    offsets = torch.tanh(net.loc_out(l_in))
    if cfg.descriptor_stride == 4:
        d_in = net.desc_conv3(F.pixel_shuffle(net.desc_conv2(d_in), 2))
    elif cfg.descriptor_rank:
        d_in = net.desc_conv2(d_in)
    return scores, offsets, net.desc_out(d_in)


def zero_border_cells(scores: torch.Tensor) -> torch.Tensor:
    """Set the outermost ring of cells to 0 (their receptive fields are mostly padding)."""
    h, w = scores.shape[-2:]
    mask = torch.zeros(h, w, dtype=scores.dtype, device=scores.device)
    if h > 2 and w > 2:
        mask[1:-1, 1:-1] = 1
    return scores * mask


def cell_offsets_to_pixels(offsets: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Map tanh offsets (B, 2, h, w) to pixel positions ``8*c + 3.5 + 7*t``, clipped to the image."""
    h, w = offsets.shape[-2:]
    cx = torch.arange(w, dtype=offsets.dtype, device=offsets.device).view(1, w) * 8 + 3.5
    cy = torch.arange(h, dtype=offsets.dtype, device=offsets.device).view(h, 1) * 8 + 3.5
    x = (cx + 7.0 * offsets[:, 0]).clamp(0, width - 1)
    y = (cy + 7.0 * offsets[:, 1]).clamp(0, height - 1)
    return torch.stack([x, y], dim=1)
