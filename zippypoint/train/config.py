"""Training configuration: a frozen dataclass per concern, loaded from JSON with unknown keys refused."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zippypoint.train.data import PhotometricConfig
from zippypoint.train.distill import TEACHERS as PEER_TEACHERS
from zippypoint.train.homography import HomographyConfig
from zippypoint.train.losses import LossConfig
from zippypoint.train.network_teacher import NETWORK_TEACHERS

STAGES = ("full", "quantize", "descriptor")
TEACHERS = PEER_TEACHERS + NETWORK_TEACHERS  # the two teacher kinds, each listed where it is implemented


@dataclass(frozen=True)
class TrainConfig:
    name: str = "stage"  # label written into logs and the model card
    preset: str = "zippypoint-fp"  # model preset to train (see `zippypoint info`)
    stage: str = "full"  # "full": all weights; "quantize": all weights with ANA; "descriptor": descriptor head only
    init: str | None = None  # safetensors weights to start from (e.g. the previous stage's final weights)
    # load only the tensors of ``init`` whose names and shapes fit (another topology's weights); the rest stays random
    init_partial: bool = False
    epochs: float = 10.0  # passes over the training images (fractions allowed)
    max_steps: int | None = None  # optional hard cap on optimiser steps
    max_minutes: float | None = None  # optional wall-time budget; the lr schedule follows the larger progress
    batch_size: int = 8  # image pairs per step (per process under torchrun)
    lr: float = 1e-3  # Adam learning rate
    lr_halving: tuple[float, ...] = (0.8,)  # fractions of training at which the lr is halved
    weight_decay: float = 0.0  # Adam weight decay
    grad_clip: float = 1.0  # gradient-norm clip (0 = off)
    height: int = 240  # training resolution
    width: int = 320
    seed: int = 0  # seeds python, numpy, torch and the data order/augmentation
    num_workers: int = 1  # DataLoader workers
    val_fraction: float = 0.05  # held-out share of the images for validation warps
    val_pairs: int = 32  # validation pairs (fixed warps of held-out images)
    val_every: int = 200  # steps between validations (and the loss-curve PNG)
    checkpoint_every: int = 100  # steps between resumable checkpoints
    log_every: int = 10  # steps between JSONL metric lines
    nan_patience: int = 10  # abort after this many consecutive non-finite losses
    ana: dict[str, Any] | None = None  # AnnealingConfig fields (quantize stage); None = plain STE
    ana_targets: str = "binary"  # which quantisers ANA drives: "binary" (sign) or "all" (sign + int8 activations)
    exclude_dev: bool = True  # leave out the fixed development split (zippypoint.train.split) entirely
    # distillation teacher: "aliked-t16", "aliked-n16" (zippypoint.train.distill) or "zippypoint" / "zippypoint-slim-h64"
    # (a shipped network, zippypoint.train.network_teacher); None = self-supervised only
    teacher: str | None = None
    snapshot_every: int = 0  # steps between kept weight snapshots (step_NNNNNN.safetensors) for selection; 0 = none
    loss: LossConfig = field(default_factory=LossConfig)
    homography: HomographyConfig = field(default_factory=HomographyConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.loss.descriptor_loss not in ("infonce", "triplet"):
            raise ValueError(f"loss.descriptor_loss must be 'infonce' or 'triplet', got {self.loss.descriptor_loss!r}")
        if self.loss.descriptor_forward not in ("soft", "hard"):
            raise ValueError(f"loss.descriptor_forward must be 'soft' or 'hard', got {self.loss.descriptor_forward!r}")
        if self.teacher is not None and self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS} or null, got {self.teacher!r}")
        if self.ana_targets not in ("binary", "all"):
            raise ValueError(f"ana_targets must be 'binary' or 'all', got {self.ana_targets!r}")
        if self.batch_size < 1 or self.epochs <= 0:
            raise ValueError("batch_size must be >= 1 and epochs > 0")
        if self.height % 8 or self.width % 8:
            raise ValueError(f"training size must be a multiple of 8, got {self.width}x{self.height}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"config file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


_NESTED = {"loss": LossConfig, "homography": HomographyConfig, "photometric": PhotometricConfig}


def _build(cls, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for key, value in data.items():
        if cls is TrainConfig and key in _NESTED:
            value = _build(_NESTED[key], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
