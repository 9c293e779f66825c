"""Frozen configuration of the ZippyPoint network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int = 3  # 3 = RGB/BGR input (converted to RGB by the extractor), 1 = grayscale
    quantized: bool = True  # True: binary residual blocks + int8 fake-quant; False: same topology in fp32
    widths: tuple[int, int, int, int, int] = (32, 32, 64, 128, 256)  # c0..c4 of docs/design.md §1
    descriptor_dim: int = 256  # descriptor length before top-k binarisation
    descriptor_ones: int = 64  # ones per binary descriptor (BinNorm k)
    cell: int = 8  # keypoint cell size in pixels (one keypoint per cell)
    bn_eps: float = 1e-3  # BatchNorm epsilon (docs/design.md §1)
    bn_momentum: float = 0.1  # BatchNorm momentum
    act_range_early: float = 1.0  # fake-quant range of the first two layers
    act_range: float = 6.0  # fake-quant range elsewhere
    input_scale: float = 0.225  # x = (I - 0.5) * input_scale for I in [0, 1] (KP2D convention)
    # quantise hard-swish inputs of the ±act_range int8 convs on the uint8 grid an int8 runtime uses there
    # (HardSwishInputQuantizer), so that the int8 export computes what the network computes
    hswish_input_quant: bool = True
    # topology options of the searched lean presets (docs/search.md); the defaults are the paper topology
    stem_stride: int = 1  # 1: 3x3 input conv at full resolution + space-to-depth (paper); 2: input conv with stride 2 writing c1 channels, no down1
    descriptor_stride: int = 4  # 4: descriptor head upsampled to H/4 by pixel shuffle (paper); 8: descriptors at H/8, no upsampling
    shared_head: bool = False  # True: one int8 3x3 conv feeds the score, location and descriptor outputs
    head_width: int = 0  # channels of the int8 3x3 head convs (score, location, first descriptor conv); 0 = c4
    descriptor_kernel: int = 3  # kernel of the int8 descriptor output conv (3: the paper; 1: a ninth of its cost)
    # descriptors at H/8 only: > 0 factors the descriptor output conv into a descriptor_kernel conv to this many
    # channels (int8, BatchNorm, no activation) and a 1x1 conv to descriptor_dim, a low-rank head (rank 64 after
    # a 64-channel head: 0.36 of the single 3x3 conv's MACs); 0 = one conv
    descriptor_rank: int = 0
    # binary residual blocks in each of the four stages (1 or 2; the paper has 2). A one-block stage keeps the
    # pair's second block ("b", with the hard-swish after the sum); in stage 4 it then also projects c3 -> c4.
    # Stage 1 may have 0 (with the stride-2 stem): the stem conv then feeds down2 directly and nothing but the stem
    # runs at H/2 (docs/search.md, "No binary block at H/2")
    stage_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if len(self.widths) != 5 or any(w <= 0 for w in self.widths):
            raise ValueError(f"widths must be 5 positive ints, got {self.widths}")
        if not 0 < self.descriptor_ones < self.descriptor_dim:
            raise ValueError(
                f"descriptor_ones must be in (0, {self.descriptor_dim}), got {self.descriptor_ones}"
            )
        if self.cell != 8:
            raise ValueError("only cell=8 is supported by the topology (three space-to-depth steps)")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.descriptor_stride not in (4, 8):
            raise ValueError(f"descriptor_stride must be 4 or 8, got {self.descriptor_stride}")
        if self.descriptor_kernel not in (1, 3):
            raise ValueError(f"descriptor_kernel must be 1 or 3, got {self.descriptor_kernel}")
        if self.descriptor_rank < 0 or self.descriptor_rank >= self.descriptor_dim:
            raise ValueError(f"descriptor_rank must be in [0, {self.descriptor_dim}) (0 = one conv), "
                             f"got {self.descriptor_rank}")
        if self.descriptor_rank and self.descriptor_stride != 8:
            raise ValueError("descriptor_rank needs descriptors at H/8 (descriptor_stride=8)")
        if self.head_width < 0:
            raise ValueError(f"head_width must be >= 0 (0 = c4), got {self.head_width}")
        if (len(self.stage_blocks) != 4 or any(n not in (1, 2) for n in self.stage_blocks[1:])
                or self.stage_blocks[0] not in (0, 1, 2)):
            raise ValueError(f"stage_blocks must be 4 values, each 1 or 2 (the first may be 0), got {self.stage_blocks}")
        if self.stage_blocks[0] == 0 and self.stem_stride != 2:
            raise ValueError("stage_blocks[0] = 0 (no binary block at H/2) needs the stride-2 stem (stem_stride=2)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["stage_blocks"] = list(self.stage_blocks)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {unknown}; known: {sorted(known)}")
        data = dict(data)
        for key in ("widths", "stage_blocks"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def without_h2_block(config: ModelConfig) -> ModelConfig:
    """``config`` without its stage-1 binary block (``stage_blocks[0] = 0``; docs/search.md, "No binary block at H/2"):
    the topology of the ``-noh2`` presets and of ``scripts/cut_h2_block.py``. Refused where stage 1 has two blocks
    (which one to keep is not defined) or none; the stride-2 stem it needs is checked by ``ModelConfig``."""
    if config.stage_blocks[0] != 1:
        raise ValueError(f"expected a one-block stage 1, got stage_blocks {config.stage_blocks}")
    return dataclasses.replace(config, stage_blocks=(0, *config.stage_blocks[1:]))
