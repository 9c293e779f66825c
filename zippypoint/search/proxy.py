"""Accuracy proxy of a candidate: a short full-precision training (the project's trainer, a few hundred steps at
a small size) and the quick HPatches-protocol check of the result (MMA@3 on the given HPatches-layout folder).

Full precision because a few hundred steps are too few for the quantised schedule; the proxy ranks topologies,
it does not predict the trained accuracy."""

from __future__ import annotations

import dataclasses
from pathlib import Path


def candidate_preset(candidate, *, quantized: bool | None = None) -> str:
    """Register ``candidate`` (optionally with another precision) as an in-process preset; returns its name."""
    from zippypoint.model.registry import Preset, get_preset, register

    config = candidate.config()
    if quantized is not None:
        config = dataclasses.replace(config, quantized=quantized)
    name = f"search:{candidate.name}{'' if quantized is None else ('-q' if quantized else '-fp')}"
    try:
        get_preset(name)
    except ValueError:
        register(Preset(name, config, f"search candidate {candidate.name} (not shipped)"))
    return name


def proxy_accuracy(candidate, data: str | Path, hpatches: str | Path, out: str | Path, *, steps: int = 300,
                   size: tuple[int, int] = (160, 120), batch_size: int = 4, max_minutes: float | None = None,
                   seed: int = 0) -> dict:
    """Train ``candidate`` in full precision for ``steps`` steps at ``size`` (W, H); returns the trainer's summary
    (``hp_mma_3``, ``hp_correctness_3``, ``hp_repeatability`` on ``hpatches``, wall time...)."""
    from zippypoint.train.config import TrainConfig
    from zippypoint.train.trainer import train

    cfg = TrainConfig(name=f"proxy {candidate.name}", preset=candidate_preset(candidate, quantized=False),
                      stage="full", max_steps=steps, epochs=1000.0, batch_size=batch_size, height=size[1],
                      width=size[0], seed=seed, num_workers=0, val_every=10**9, checkpoint_every=10**9,
                      log_every=50, max_minutes=max_minutes, val_pairs=4)
    return train(cfg, data, out, resume=False, progress=False, hpatches=hpatches)
