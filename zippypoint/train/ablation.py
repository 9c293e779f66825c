"""Training ablations on an equal budget: every variant is one base stage config with a few fields changed, trained
for the same number of steps from the same start on the same photos, then evaluated on the same development sets
(the deployed post-processing; PyTorch fake-quant network).

Command line (a plan JSON, see ``configs/ablations/lean.json``; finished runs are reused, interrupted ones resume)::

    python -m zippypoint.train.ablation --plan configs/ablations/lean.json --data PHOTOS --dev SET [--dev SET ...] \\
        --out DIR

Writes ``ablation.json`` (settings, per-variant budget and metrics), ``ablation.md`` (the table) and
``ablation.png`` (MMA@3 per set and variant) under ``--out``; one run folder per variant.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DESCRIPTORS = ("binary", "float")


@dataclass(frozen=True)
class Variant:
    name: str  # row label
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields (nested dicts merge)
    # ANA: the annealing closes after this share of the budget (sets ``ana.epochs`` from the run's length)
    ana_window: float | None = None
    descriptors: tuple[str, ...] = ("binary",)  # also evaluate the float descriptors of the same network

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("every variant needs a name")
        if self.ana_window is not None and not 0.0 < self.ana_window <= 1.0:
            raise ValueError(f"{self.name}: ana_window must be in (0, 1], got {self.ana_window}")
        bad = sorted(set(self.descriptors) - set(DESCRIPTORS))
        if bad:
            raise ValueError(f"{self.name}: descriptors must be among {DESCRIPTORS}, got {bad}")

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass(frozen=True)
class AblationPlan:
    base: str  # the stage config every variant starts from (a path relative to the plan file)
    steps: int  # optimiser steps per variant (the equal budget)
    variants: tuple[Variant, ...]
    resolution: tuple[int, int] = (320, 240)  # evaluation size (W, H)
    top_k: int = 300

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.variants:
            raise ValueError("the plan has no variants")
        slugs = [v.slug for v in self.variants]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"variant names must differ in letters and digits, got {[v.name for v in self.variants]}")

    @classmethod
    def from_file(cls, path: str | Path) -> AblationPlan:
        data = json.loads(Path(path).read_text())
        known = {"base", "steps", "variants", "resolution", "top_k"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown plan keys {unknown}; known: {sorted(known)}")
        variants = []
        for v in data.get("variants", []):
            extra = sorted(set(v) - {"name", "overrides", "ana_window", "descriptors"})
            if extra:
                raise ValueError(f"{path}: unknown variant keys {extra}")
            variants.append(Variant(name=v["name"], overrides=v.get("overrides", {}), ana_window=v.get("ana_window"),
                                    descriptors=tuple(v.get("descriptors", ("binary",)))))
        return cls(base=str(Path(path).parent / data["base"]), steps=int(data["steps"]), variants=tuple(variants),
                   resolution=tuple(data.get("resolution", (320, 240))), top_k=int(data.get("top_k", 300)))


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def variant_config(plan: AblationPlan, variant: Variant, data: str | Path):
    """The TrainConfig of one variant: the base with its overrides, planned to run exactly ``plan.steps`` steps."""
    from zippypoint.train.config import TrainConfig
    from zippypoint.train.trainer import steps_per_epoch, training_images

    base = TrainConfig.from_file(plan.base).to_dict()
    cfg = TrainConfig.from_dict(_merge(base, {**variant.overrides, "name": variant.slug, "max_steps": None,
                                              "max_minutes": None}))
    epochs = plan.steps / steps_per_epoch(len(training_images(cfg, data)[0]), cfg.batch_size)
    changes: dict[str, Any] = {"epochs": epochs, "max_steps": plan.steps}
    if variant.ana_window is not None:
        if cfg.stage != "quantize":
            raise ValueError(f"{variant.name}: ana_window needs stage 'quantize', got {cfg.stage!r}")
        changes["ana"] = {**(cfg.ana or {}), "epochs": variant.ana_window * epochs}
    return cfg.replace(**changes)


def run_variant(plan: AblationPlan, variant: Variant, data: str | Path, out: Path, dev_sets: list[str]) -> dict:
    """Train (or reuse, or resume) one variant and evaluate its final weights on every development set."""
    from zippypoint.train.diagnostics import evaluate_dev_kinds, load_model
    from zippypoint.train.trainer import FINAL, train

    cfg = variant_config(plan, variant, data)
    folder = out / variant.slug
    if not (folder / FINAL).is_file():
        train(cfg, data, folder)
    summary = json.loads((folder / "summary.json").read_text())
    model = load_model(cfg.preset, str(folder / FINAL))
    row: dict[str, Any] = {"name": variant.name, "run": str(folder), "steps": summary["steps"],
                           "pairs": summary["steps"] * cfg.batch_size, "wall_time_s": summary["wall_time_s"],
                           "device": summary.get("device"), "teacher": cfg.teacher,
                           "ana": cfg.ana, "metrics": {}}
    for root in dev_sets:  # every descriptor kind from one network run per image
        per_kind = evaluate_dev_kinds(model, root, plan.resolution, plan.top_k, (0.0,), tuple(variant.descriptors))
        for kind in variant.descriptors:
            row["metrics"].setdefault(kind, {})[Path(root).name] = per_kind[kind]["dedupe_0"]
    return row


def table(rows: list[dict], dev_sets: list[str]) -> list[str]:
    names = [Path(r).name for r in dev_sets]
    lines = ["| variant | descriptors | budget | " + " | ".join(f"{n} C3 / MMA@3" for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for row in rows:
        budget = f"{row['steps']} steps ({row['pairs']} pairs), {row['wall_time_s'] / 60:.1f} min"
        for kind, per_set in row["metrics"].items():
            cells = " | ".join(f"{per_set[n]['correctness_3']:.3f} / {per_set[n]['mma_3']:.3f}" for n in names)
            lines.append(f"| {row['name']} | {kind} | {budget} | {cells} |")
    return lines


def plot(rows: list[dict], dev_sets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [Path(r).name for r in dev_sets]
    bars = [(f"{row['name']} ({kind})", [per_set[n]["mma_3"] for n in names])
            for row in rows for kind, per_set in row["metrics"].items()]
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(names)), 4.0))
    width = 0.8 / max(len(bars), 1)
    x = np.arange(len(names))
    for i, (label, values) in enumerate(bars):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=label)
    ax.set_xticks(x, names)
    ax.set_ylabel("MMA@3")
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    ax.set_title("Equal-budget ablations")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zippypoint.train.ablation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", required=True, help="ablation plan JSON (see configs/ablations/lean.json)")
    parser.add_argument("--data", required=True, help="training photo folder")
    parser.add_argument("--dev", action="append", required=True, help="HPatches-layout development set (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (run folders, table, figure)")
    parser.add_argument("--only", default=None, help="comma-separated variant names or slugs to run (default: all)")
    args = parser.parse_args(argv)
    try:
        plan = AblationPlan.from_file(args.plan)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--plan {args.plan}: {exc}")
    if not Path(plan.base).is_file():
        parser.error(f"--plan {args.plan}: its base config {plan.base} does not exist (paths are relative to the plan)")
    missing = [d for d in args.dev if not Path(d).is_dir()]
    if missing or not Path(args.data).is_dir():
        parser.error(f"no such folder: {', '.join(missing or [args.data])}")
    wanted = set(args.only.split(",")) if args.only else None
    variants = [v for v in plan.variants if wanted is None or v.name in wanted or v.slug in wanted]
    if not variants:
        parser.error(f"--only {args.only}: no variant of the plan has that name")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, variant in enumerate(variants):
        print(f"[{i + 1}/{len(variants)}] {variant.name}", flush=True)
        rows.append(run_variant(plan, variant, args.data, args.out, args.dev))
        result = {"plan": str(args.plan), "base": plan.base, "steps": plan.steps,
                  "resolution": list(plan.resolution), "top_k": plan.top_k, "dev_sets": args.dev, "variants": rows}
        (args.out / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "ablation.md").write_text("\n".join(table(rows, args.dev)) + "\n")
    plot(rows, args.dev, args.out / "ablation.png")
    print((args.out / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
