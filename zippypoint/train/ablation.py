"""Training ablations on an equal budget: every variant is one base stage config with a few fields changed, trained
for the same number of steps from the same start on the same photos, then evaluated on the same development sets
(the deployed post-processing; PyTorch fake-quant network).

With ``seeds`` in the plan every variant is trained once per seed (the seed sets the data order and the augmentation;
the start is the same): the table gives the mean over seeds with the range of MMA@3, and a second table the paired
difference of each variant from the first one, seed by seed (same photos in the same order), so that a gap can be
read against the spread of the seeds.

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
    seeds: tuple[int, ...] = ()  # one run per variant and seed (run folders <variant>/seed-<n>); () = the base's seed
    # C3 is also averaged over this many orders of the matches given to RANSAC (the table's C3 column then shows it)
    ransac_orders: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.variants:
            raise ValueError("the plan has no variants")
        slugs = [v.slug for v in self.variants]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"variant names must differ in letters and digits, got {[v.name for v in self.variants]}")
        if self.ransac_orders < 1:
            raise ValueError(f"ransac_orders must be >= 1, got {self.ransac_orders}")
        if len(set(self.seeds)) != len(self.seeds) or any(not isinstance(n, int) or n < 0 for n in self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")

    @classmethod
    def from_file(cls, path: str | Path) -> AblationPlan:
        data = json.loads(Path(path).read_text())
        known = {"base", "steps", "variants", "resolution", "top_k", "seeds", "ransac_orders"}
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
                   resolution=tuple(data.get("resolution", (320, 240))), top_k=int(data.get("top_k", 300)),
                   seeds=tuple(data.get("seeds", ())), ransac_orders=int(data.get("ransac_orders", 1)))


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def variant_config(plan: AblationPlan, variant: Variant, data: str | Path, seed: int | None = None):
    """The TrainConfig of one variant: the base with its overrides, planned to run exactly ``plan.steps`` steps
    (with ``seed``: that seed instead of the base's)."""
    from zippypoint.train.config import TrainConfig
    from zippypoint.train.trainer import steps_per_epoch, training_images

    base = TrainConfig.from_file(plan.base).to_dict()
    cfg = TrainConfig.from_dict(_merge(base, {**variant.overrides, "name": variant.slug, "max_steps": None,
                                              "max_minutes": None}))
    epochs = plan.steps / steps_per_epoch(len(training_images(cfg, data)[0]), cfg.batch_size)
    changes: dict[str, Any] = {"epochs": epochs, "max_steps": plan.steps}
    if seed is not None:
        changes["seed"] = seed
    if variant.ana_window is not None:
        if cfg.stage != "quantize":
            raise ValueError(f"{variant.name}: ana_window needs stage 'quantize', got {cfg.stage!r}")
        changes["ana"] = {**(cfg.ana or {}), "epochs": variant.ana_window * epochs}
    return cfg.replace(**changes)


def run_variant(plan: AblationPlan, variant: Variant, data: str | Path, out: Path, dev_sets: list[str]) -> dict:
    """Train (or reuse, or resume) one variant, once per seed of the plan, and evaluate the final weights of each run
    on every development set. ``metrics`` holds the mean over the runs; ``runs`` each run's own."""
    seeds = plan.seeds or (None,)
    runs = [_run_once(plan, variant, data, out / variant.slug if seed is None else out / variant.slug / f"seed-{seed}",
                      dev_sets, seed) for seed in seeds]
    first = runs[0]
    row: dict[str, Any] = {"name": variant.name, "run": first["run"], "steps": first["steps"], "pairs": first["pairs"],
                           "wall_time_s": sum(r["wall_time_s"] for r in runs) / len(runs), "device": first["device"],
                           "teacher": first["teacher"], "ana": first["ana"],
                           "metrics": mean_metrics([r["metrics"] for r in runs])}
    if plan.seeds:
        row["runs"] = runs
    return row


def _run_once(plan: AblationPlan, variant: Variant, data: str | Path, folder: Path, dev_sets: list[str],
              seed: int | None) -> dict:
    from zippypoint.train.diagnostics import evaluate_dev_kinds, load_model
    from zippypoint.train.trainer import FINAL, train

    cfg = variant_config(plan, variant, data, seed)
    if not (folder / FINAL).is_file():
        train(cfg, data, folder)
    summary = json.loads((folder / "summary.json").read_text())
    model = load_model(cfg.preset, str(folder / FINAL))
    row: dict[str, Any] = {"seed": cfg.seed, "run": str(folder), "steps": summary["steps"],
                           "pairs": summary["steps"] * cfg.batch_size, "wall_time_s": summary["wall_time_s"],
                           "device": summary.get("device"), "teacher": cfg.teacher, "ana": cfg.ana, "metrics": {}}
    for root in dev_sets:  # every descriptor kind from one network run per image
        per_kind = evaluate_dev_kinds(model, root, plan.resolution, plan.top_k, (0.0,), tuple(variant.descriptors),
                                      ransac_orders=plan.ransac_orders)
        for kind in variant.descriptors:
            row["metrics"].setdefault(kind, {})[Path(root).name] = per_kind[kind]["dedupe_0"]
    return row


def mean_metrics(per_run: list[dict]) -> dict:
    """The mean over runs of every number in nested ``{kind: {set: {metric: value}}}`` dicts (one per run; nested
    dicts such as the wrong-match split are averaged key by key); with one run, that run's own dict. A value that is
    not a number in every run (None where a metric is undefined) is None."""
    if len(per_run) == 1:
        return per_run[0]
    return _mean_tree(per_run)


def _mean_tree(values: list):
    if all(isinstance(v, dict) for v in values):
        return {key: _mean_tree([v.get(key) for v in values]) for key in values[0]}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sum(values) / len(values)
    return None


def _spread(row: dict, kind: str, name: str, key: str) -> tuple[float, float] | None:
    runs = row.get("runs")
    if not runs or len(runs) < 2:
        return None
    values = [r["metrics"][kind][name][key] for r in runs]
    return min(values), max(values)


def paired_differences(rows: list[dict], dev_sets: list[str], kind: str = "binary") -> list[dict]:
    """Each variant after the first minus the first, run by run of the same seed: per set, the mean and range over
    seeds of the difference in C3 and MMA@3 (``kind`` descriptors). Empty without seeds."""
    if not rows or "runs" not in rows[0]:
        return []
    names = [Path(r).name for r in dev_sets]
    base = {r["seed"]: r["metrics"][kind] for r in rows[0]["runs"]}
    out = []
    for row in rows[1:]:
        runs = [r for r in row.get("runs", []) if r["seed"] in base and kind in r["metrics"]]
        if not runs:
            continue
        entry = {"name": row["name"], "reference": rows[0]["name"], "seeds": [r["seed"] for r in runs], "sets": {}}
        for n in names:
            for key in ("correctness_3_orders", "mma_3"):
                diffs = [r["metrics"][kind][n][key] - base[r["seed"]][n][key] for r in runs]
                entry["sets"].setdefault(n, {})[key] = {"mean": sum(diffs) / len(diffs), "min": min(diffs),
                                                         "max": max(diffs)}
        out.append(entry)
    return out


def table(rows: list[dict], dev_sets: list[str], ransac_orders: int = 1) -> list[str]:
    """The ablation table; with several seeds a cell is the mean C3 / MMA@3 over seeds with MMA@3's range, and a
    second table gives the paired differences from the first variant. C3 is averaged over ``ransac_orders`` orders
    of the matches given to RANSAC (the plan's; 1 = the protocol's single run)."""
    names = [Path(r).name for r in dev_sets]
    c3 = "C3" if ransac_orders == 1 else f"C3/{ransac_orders}"
    seeds = len(rows[0].get("runs", [])) if rows else 0
    lines = ["| variant | descriptors | budget | " + " | ".join(f"{n} {c3} / MMA@3" for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for row in rows:
        budget = f"{row['steps']} steps ({row['pairs']} pairs), {row['wall_time_s'] / 60:.1f} min"
        if seeds > 1:
            budget += f" a run, {seeds} seeds"
        for kind, per_set in row["metrics"].items():
            cells = []
            for n in names:
                cell = f"{per_set[n]['correctness_3_orders']:.3f} / {per_set[n]['mma_3']:.3f}"
                spread = _spread(row, kind, n, "mma_3")
                if spread is not None:
                    cell += f" ({spread[0]:.3f}-{spread[1]:.3f})"
                cells.append(cell)
            lines.append(f"| {row['name']} | {kind} | {budget} | " + " | ".join(cells) + " |")
    differences = paired_differences(rows, dev_sets)
    if differences:
        lines += ["", f"Paired differences from \"{differences[0]['reference']}\" (binary descriptors, same seed; mean "
                  "[min, max] over seeds):", "",
                  "| variant | " + " | ".join(f"{n} {c3} | {n} MMA@3" for n in names) + " |",
                  "|---|" + "---|---|" * len(names)]
        for entry in differences:
            cells = [f"{entry['sets'][n][k]['mean']:+.3f} [{entry['sets'][n][k]['min']:+.3f}, "
                     f"{entry['sets'][n][k]['max']:+.3f}]" for n in names for k in ("correctness_3_orders", "mma_3")]
            lines.append(f"| {entry['name']} | " + " | ".join(cells) + " |")
    return lines


def plot(rows: list[dict], dev_sets: list[str], path: Path) -> None:
    """MMA@3 per set and variant (bars, the seeds' range as error bars) and, with seeds, each variant's paired
    difference from the first one (mean and range over seeds) on the right, where gaps of 0.01 are visible."""
    import numpy as np

    from zippypoint.viz import agg_figure

    names = [Path(r).name for r in dev_sets]
    bars = [(f"{row['name']} ({kind})", [per_set[n]["mma_3"] for n in names],
             [_spread(row, kind, n, "mma_3") for n in names])
            for row in rows for kind, per_set in row["metrics"].items()]
    differences = paired_differences(rows, dev_sets)
    panels = 2 if differences else 1
    fig = agg_figure(max(6.0, 2.2 * len(names)) * panels, 4.0 + 0.18 * len(bars))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    width = 0.8 / max(len(bars), 1)
    x = np.arange(len(names))
    colours = {}
    for i, (label, values, spreads) in enumerate(bars):
        errors = None
        if all(sp is not None for sp in spreads):  # the range over seeds
            errors = np.array([[v - sp[0] for v, sp in zip(values, spreads, strict=True)],
                               [sp[1] - v for v, sp in zip(values, spreads, strict=True)]])
        drawn = ax.bar(x + i * width - 0.4 + width / 2, values, width, label=label, yerr=errors, capsize=2)
        colours[label] = drawn.patches[0].get_facecolor() if drawn.patches else None
    ax.set_xticks(x, names)
    ax.set_ylabel("MMA@3")
    ax.set_ylim(0, 1.0)
    ax.set_title("MMA@3 (range over seeds)")
    if differences:
        dx = axes[1]
        step = 0.8 / len(differences)
        for i, entry in enumerate(differences):
            cells = [entry["sets"][n]["mma_3"] for n in names]
            mean = np.array([c["mean"] for c in cells])
            spread = np.array([[c["mean"] - c["min"] for c in cells], [c["max"] - c["mean"] for c in cells]])
            dx.errorbar(x + i * step - 0.4 + step / 2, mean, yerr=spread, fmt="o", capsize=3,
                        color=colours.get(f"{entry['name']} (binary)"))
        dx.axhline(0.0, color="0.3", linewidth=0.8)
        dx.set_xticks(x, names)
        dx.set_ylabel(f"MMA@3 minus {differences[0]['reference']}")
        dx.set_title("Paired difference, same seed (mean, range)")
        dx.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Equal-budget ablations")
    fig.tight_layout(rect=(0, 0.045 * len(bars) / 2 + 0.04, 1, 1))
    fig.savefig(path, dpi=120)


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
        result = {"plan": str(args.plan), "base": plan.base, "steps": plan.steps, "seeds": list(plan.seeds),
                  "ransac_orders": plan.ransac_orders,
                  "resolution": list(plan.resolution), "top_k": plan.top_k, "dev_sets": args.dev, "variants": rows,
                  "paired_differences": paired_differences(rows, args.dev)}
        (args.out / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "ablation.md").write_text("\n".join(table(rows, args.dev, plan.ransac_orders)) + "\n")
    plot(rows, args.dev, args.out / "ablation.png")
    print((args.out / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
