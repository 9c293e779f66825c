"""One registry of model presets, each with its input contract and (optional) shipped weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from zippypoint.model.config import ModelConfig, without_h2_block

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# the preset every command, extractor and export uses when none is named; the one place that says which it is
DEFAULT_PRESET = "zippypoint-slim-h64-noh2"
PAPER_PRESET = "zippypoint"  # the faithful paper topology, kept beside the default


@dataclass(frozen=True)
class Preset:
    name: str  # registry key
    config: ModelConfig  # network configuration
    description: str  # one line for `zippypoint info`
    weights: str | None = None  # file name in zippypoint/weights/, None = no shipped weights
    sha256: str | None = None  # expected digest of the weights file

    @property
    def input_contract(self) -> str:
        ch = "RGB" if self.config.in_channels == 3 else "grayscale"
        return f"float32 (B,{self.config.in_channels},H,W) {ch} in [0,1], H and W multiples of 8"

    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None


_PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    if preset.name in _PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    _PRESETS[preset.name] = preset
    return preset


register(Preset("zippypoint", ModelConfig(in_channels=3, quantized=True),
                "mixed precision: binary 3x3 residual blocks, int8 elsewhere, fp32 score/location outputs",
                weights="zippypoint.safetensors"))
register(Preset("zippypoint-fp", ModelConfig(in_channels=3, quantized=False),
                "the same topology in full precision (the paper's reference model)",
                weights="zippypoint-fp.safetensors"))
# the gray presets' weights are the RGB ones with the input kernel summed over its channels (exact on gray images;
# scripts/derive_gray_weights.py)
register(Preset("zippypoint-gray", ModelConfig(in_channels=1, quantized=True),
                "mixed precision, 1-channel grayscale input (weights derived from zippypoint)",
                weights="zippypoint-gray.safetensors"))
register(Preset("zippypoint-fp-gray", ModelConfig(in_channels=1, quantized=False),
                "full precision, 1-channel grayscale input (weights derived from zippypoint-fp)",
                weights="zippypoint-fp-gray.safetensors"))
# the lean topology chosen by the search (docs/search.md): gray input, stride-2 input conv (no down1), the paper's
# binary stages, one int8 3x3 conv of 128 channels shared by the three heads, descriptors at H/8 (a quarter of the
# map to sample)
LEAN = ModelConfig(in_channels=1, quantized=True, stem_stride=2, descriptor_stride=8, shared_head=True, head_width=128)
register(Preset("zippypoint-lean", LEAN,
                "searched lean topology: gray, stride-2 stem, shared int8 head, descriptors at H/8 (mixed precision)",
                weights="zippypoint-lean.safetensors"))
register(Preset("zippypoint-lean-fp", dataclasses.replace(LEAN, quantized=False),
                "the lean topology in full precision (pre-training stage of zippypoint-lean)"))
# the lean topology with one binary block per stage (docs/search.md, "Stage depth"): about 0.75x the lean
# network's latency at 320x240 and 640x480; starts from the lean weights, each stage's one block taking the lean
# network's first block of that stage (scripts/init_slim_from_lean.py), then distilled from zippypoint
SLIM = dataclasses.replace(LEAN, stage_blocks=(1, 1, 1, 1))
register(Preset("zippypoint-slim", SLIM,
                "the lean topology with one binary block per stage (gray, mixed precision; distilled from zippypoint)",
                weights="zippypoint-slim.safetensors"))
# the slim preset with a 64-channel shared head (half the two largest int8 layers at H/8; docs/search.md, "Stage
# depth"); starts from the slim weights with the head pruned and the output convs refitted (scripts/prune_head.py)
SLIM_H64 = register(Preset("zippypoint-slim-h64", dataclasses.replace(SLIM, head_width=64),
                           "the slim preset with a 64-channel shared head (gray, mixed precision; distilled from "
                           "zippypoint)",
                           weights="zippypoint-slim-h64.safetensors"))
# the default: slim-h64's topology without the binary block at H/2 (as zippypoint-tiny-r64-noh2 is tiny-r64's).
# Starts from slim-h64's weights cut and refitted (scripts/cut_h2_block.py), is distilled from zippypoint-slim-h64
# (configs/slim_h64_noh2_distill.json), takes its descriptors from ALIKED-t16 (configs/slim_h64_noh2_aliked.json), then
# trains on the homographic losses alone (configs/slim_h64_noh2_selfsup.json, then configs/slim_h64_noh2_selfsup_2.json)
register(Preset("zippypoint-slim-h64-noh2", without_h2_block(SLIM_H64.config),
                "zippypoint-slim-h64 without the binary block at H/2, the default (gray, mixed precision; "
                "distilled from zippypoint-slim-h64 and ALIKED-t16)",
                weights="zippypoint-slim-h64-noh2.safetensors"))
# the slim-h64 preset without the widening in stage 4 (c4 = 128: its binary block keeps 128 channels with an
# identity shortcut, and the shared head reads 128 channels) and with a 1x1 descriptor output conv; about 0.8x
# slim-h64's network latency on OpenVINO at 320x240 and 640x480 (docs/search.md, "Tiny"), below it in matching
# (README, Training, "A faster preset"). Starts from the
# slim-h64 weights cut and refitted (scripts/shrink_stage4.py), then distilled from zippypoint-slim-h64
register(Preset("zippypoint-tiny", dataclasses.replace(SLIM, head_width=64, widths=(32, 32, 64, 128, 128),
                                                       descriptor_kernel=1),
                "slim-h64 with 128 channels in stage 4 and a 1x1 descriptor conv (gray, mixed precision; "
                "distilled from zippypoint-slim-h64)",
                weights="zippypoint-tiny.safetensors"))
# the tiny preset with a low-rank 3x3 descriptor head (a 3x3 int8 conv 64 -> 64, then 1x1 64 -> 256): slim-h64's
# descriptors read a 3x3 neighbourhood of the head (a 1x1 conv reproduces only 60 % of their variance), at
# about a third of its descriptor conv's cost (docs/search.md, "A low-rank 3x3 descriptor head"). Starts from the
# tiny weights with that head fitted to slim-h64's descriptors (scripts/lowrank_descriptor.py), then distilled from
# zippypoint-slim-h64
TINY_R64 = register(Preset(
    "zippypoint-tiny-r64",
    dataclasses.replace(SLIM, head_width=64, widths=(32, 32, 64, 128, 128), descriptor_rank=64),
    "the tiny preset with a rank-64 3x3 descriptor head (gray, mixed precision; distilled from "
    "zippypoint-slim-h64)",
    weights="zippypoint-tiny-r64.safetensors"))
# the tiny-r64 preset without the binary block at H/2 (stage_blocks[0] = 0: the stride-2 stem feeds down2 directly);
# 0.85x / 0.78x of tiny-r64's pipeline time on an AVX2-only CPU (docs/search.md, "No binary block at H/2"). It starts
# from tiny-r64's weights cut and refitted (scripts/cut_h2_block.py), then is distilled from zippypoint-slim-h64
# (configs/tiny_r64_noh2_gpu_distill.json) and takes its descriptors from ALIKED-t16 (configs/tiny_r64_noh2_gpu_aliked.json)
register(Preset("zippypoint-tiny-r64-noh2", without_h2_block(TINY_R64.config),
                "zippypoint-tiny-r64 without the binary block at H/2, the fastest preset (gray, mixed precision; "
                "distilled from zippypoint-slim-h64 and ALIKED-t16)",
                weights="zippypoint-tiny-r64-noh2.safetensors"))


def list_models() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}") from None


def _expected_sha256(preset: Preset) -> str | None:
    """The digest recorded beside the shipped weights (``<weights>.sha256``), if any."""
    if preset.sha256:
        return preset.sha256
    path = preset.weights_path()
    sidecar = path.with_suffix(".sha256") if path else None
    if sidecar and sidecar.exists():
        return sidecar.read_text().split()[0]
    return None


def create_model(name: str = DEFAULT_PRESET, pretrained: bool = False, **overrides):
    """Build a preset with random weights; ``pretrained=True`` loads its shipped weights (strict)."""
    import dataclasses

    from zippypoint.model.network import ZippyPointNet

    preset = get_preset(name)
    config = dataclasses.replace(preset.config, **overrides) if overrides else preset.config
    model = ZippyPointNet(config)
    if pretrained:
        load_pretrained(model, name)
    return model


def load_pretrained(model, name: str) -> None:
    from zippypoint.model.weights import WeightsError, load_state_strict, read_state_dict

    preset = get_preset(name)
    path = preset.weights_path()
    if path is None or not path.exists():
        raise WeightsError(
            f"no pretrained weights are shipped for {name!r}{f' (looked for {path})' if path else ''}. "
            "Train them with `zippypoint train` or pass pretrained=False for random weights."
        )
    sha = _expected_sha256(preset)
    if sha is None:
        raise WeightsError(f"no sha256 recorded for {path}; refusing to load unverified weights")
    state, _ = read_state_dict(path, sha256=sha)
    load_state_strict(model, state, source=f"weights {path.name}")


def load_weights(model, path: str | Path, sha256: str | None = None) -> dict[str, str]:
    """Load a safetensors file into ``model`` strictly; returns the file's metadata."""
    from zippypoint.model.weights import load_state_strict, read_state_dict

    state, meta = read_state_dict(path, sha256=sha256)
    load_state_strict(model, state, source=f"weights {Path(path).name}")
    return meta
