"""Turn finished training runs into shipped weights: safetensors + sha256 sidecar + model card.

    python -m zippypoint.train.release --preset zippypoint --runs runs/default/stage1 runs/default/stage2 \
        runs/default/stage3 [--metrics results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from zippypoint.model.registry import WEIGHTS_DIR, get_preset
from zippypoint.model.weights import read_state_dict, sha256_file


def release(preset: str, runs: list[Path], metrics: dict | None = None, dest: Path = WEIGHTS_DIR,
            notes: list[str] | None = None, weights: Path | None = None, previous_card: Path | None = None) -> dict:
    """Copy the last run's final weights (or ``weights``, e.g. a snapshot of it chosen on the development sets) to
    ``dest/<preset>.safetensors`` and write its card.

    ``previous_card``: the card of the weights the first run started from; its stages come first in the new card
    (a continued preset whose earlier run folders are not at hand)."""
    get_preset(preset)  # validates the name
    earlier_stages, earlier_notes = [], []
    if previous_card is not None:  # read (and checked) before anything is written: it may be the card replaced here
        earlier = json.loads(Path(previous_card).read_text())
        if earlier.get("preset") != preset:
            raise ValueError(f"{previous_card} is the card of {earlier.get('preset')!r}, not {preset!r}")
        earlier_stages, earlier_notes = earlier["stages"], earlier.get("notes", [])
    runs = [Path(r) for r in runs]
    final = Path(weights) if weights is not None else runs[-1] / "final.safetensors"
    _, meta = read_state_dict(final)  # refuses anything that is not clean safetensors
    if meta.get("preset") != preset:
        raise ValueError(f"{final} holds weights for preset {meta.get('preset')!r}, not {preset!r}")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{preset}.safetensors"
    shutil.copyfile(final, target)
    sha = sha256_file(target)
    target.with_suffix(".sha256").write_text(f"{sha}  {target.name}\n")
    stages = list(earlier_stages)
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        config = json.loads((run / "config.json").read_text())
        stages.append({"run": run.name, "config": config, "steps": summary["steps"],
                       "wall_time_s": summary["wall_time_s"], "device": summary.get("device", "not recorded"),
                       "validation": {k: v for k, v in summary.items() if k.startswith("val")}})
    shipped_steps = meta.get("steps")
    if weights is not None and shipped_steps is not None and int(shipped_steps) != stages[-1]["steps"]:
        # a snapshot of the last run: the card counts the steps (and time) that went into the shipped file
        last = stages[-1]
        last["steps_run"], last["steps"] = last["steps"], int(shipped_steps)
        last["wall_time_s"] = _time_at_step(runs[-1], last["steps"], last["wall_time_s"])
        last["validation_of_final_weights"] = last.pop("validation")
    if "averaged_from" in meta:
        stages[-1]["averaged_from_steps"] = [int(x) if x.isdigit() else x for x in meta["averaged_from"].split(",")]
    card = {
        "preset": preset,
        "sha256": sha,
        "file": target.name,
        "data": "train-images: 836 photos (BSDS500 500, COCO 2017 256, Sun-Hays 80), long side <= 512 px",
        "hardware": sorted({s["device"] for s in stages}),
        "total_steps": sum(s["steps"] for s in stages),
        "total_wall_time_min": round(sum(s["wall_time_s"] for s in stages) / 60, 1),
        "stages": stages,
        "shipped_file": str(final),
        "metrics": metrics or {},
        "notes": [*earlier_notes, *(notes or [])],
    }
    (dest / f"{preset}.card.json").write_text(json.dumps(card, indent=2))
    return card


def _time_at_step(run: Path, step: int, fallback: float) -> float:
    """Training seconds logged at ``step`` of a run (its metrics.jsonl), or ``fallback`` if not logged."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return fallback
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    times = [r["time_s"] for r in rows if r.get("kind") == "train" and "time_s" in r and r.get("step", step + 1) <= step]
    return float(times[-1]) if times else fallback


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="stage run folders in order; the last one is shipped")
    p.add_argument("--metrics", default=None, help="JSON of evaluation metrics to record in the card")
    p.add_argument("--note", action="append", default=[], help="a line for the card's notes (repeatable)")
    p.add_argument("--weights", default=None, help="ship this snapshot of the last run instead of its final weights")
    p.add_argument("--previous-card", default=None,
                   help="card of the weights the first run started from (its stages are kept in the new card)")
    args = p.parse_args(argv)
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    card = release(args.preset, [Path(r) for r in args.runs], metrics, notes=args.note,
                   weights=Path(args.weights) if args.weights else None,
                   previous_card=Path(args.previous_card) if args.previous_card else None)
    print(json.dumps({k: card[k] for k in ("preset", "sha256", "total_steps", "total_wall_time_min")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
