"""Which weights a preset runs with: one resolver for the CLI, evaluation, export and benchmark.

``resolve_model(preset, weights)`` picks a safetensors file (``weights``), the preset's shipped file, or seeded
random weights (``random_weights=True``, or ``fallback_random=True`` when nothing is shipped: timing only, the
network costs the same), and records the file's sha256. ``build_network(choice)`` builds that network in eval
mode. Public through ``zippypoint.resolve``; it lives here so that ``zippypoint.export`` can use it without
depending on the runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zippypoint.model.registry import DEFAULT_PRESET

RANDOM_SEED = 0  # random weights are drawn from this seed, so two builds of "random" are the same network
RANDOM_SHA256 = "random"


@dataclass(frozen=True)
class ModelChoice:
    """The weights a preset runs with: ``source`` is "shipped", "file" or "random"."""

    preset: str
    source: str
    path: str | None  # the safetensors file (shipped and file)
    sha256: str  # of that file; RANDOM_SHA256 for seeded random weights

    @property
    def label(self) -> str:
        if self.source == "random":
            return "random (timing only: trained weights absent)"
        name = "shipped" if self.source == "shipped" else f"file {Path(self.path).name}"
        return f"{name} (sha256 {self.sha256[:12]})"


def resolve_model(preset: str = DEFAULT_PRESET, weights: str | Path | None = None, *, random_weights: bool = False,
                  fallback_random: bool = False) -> ModelChoice:
    """Pick the weights of ``preset``: ``weights`` (a safetensors file) if given, else the shipped ones, else
    random ones when ``fallback_random``; ``random_weights`` forces random ones. Raises ValueError for an
    unknown preset or contradictory options, FileNotFoundError for a missing file and ``WeightsError`` when
    nothing is shipped and random weights are not allowed."""
    from zippypoint.model.registry import get_preset
    from zippypoint.model.weights import WeightsError, sha256_file

    info = get_preset(preset)  # ValueError naming the presets
    if weights is not None and random_weights:
        raise ValueError("pass either a weights file or random_weights, not both")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        return ModelChoice(preset, "file", str(path), sha256_file(path))
    shipped = info.weights_path()
    if not random_weights and shipped is not None and shipped.is_file():
        return ModelChoice(preset, "shipped", str(shipped), sha256_file(shipped))
    if random_weights or fallback_random:
        return ModelChoice(preset, "random", None, RANDOM_SHA256)
    where = f" (looked for {shipped})" if shipped is not None else ""
    raise WeightsError(f"no pretrained weights are shipped for {preset!r}{where}; pass a weights "
                       "file (--weights FILE) or allow random weights (--random-weights, for testing only)")


def build_network(choice: ModelChoice):
    """The network of ``choice`` in eval mode: shipped weights checked against their recorded sha256, a file
    loaded strictly, random weights drawn from RANDOM_SEED. Needs torch."""
    import torch

    from zippypoint.model.registry import create_model, load_pretrained, load_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = create_model(choice.preset)
    if choice.source == "shipped":
        load_pretrained(model, choice.preset)
    elif choice.source == "file":
        load_weights(model, choice.path)
    return model.eval()
