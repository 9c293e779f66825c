"""Average the weights of a run's late snapshots into one file (checkpoint averaging).

Snapshots of one run that sit on a plateau differ mostly by optimiser noise; their mean is a single model that
selection on a small development set does not have to pick by chance. Floating tensors (latent binary weights,
int8 weights, BatchNorm statistics) are averaged in float64; integer tensors (BatchNorm's step counters) come from
the last snapshot. The output's metadata is the last snapshot's, with ``averaged_from`` listing the steps.

    python -m zippypoint.train.average runs/x/step_002*.safetensors runs/x/step_003*.safetensors --out avg.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zippypoint.model.weights import WeightsError, read_state_dict, sha256_file


def average_snapshots(paths: list[Path], out: Path) -> dict[str, str]:
    """Write the mean of ``paths`` (same preset, same tensors) to ``out``; returns its metadata."""
    from safetensors.torch import save_file

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two snapshots, got {len(paths)}")
    first, first_meta = read_state_dict(paths[0])
    total = {k: v.double() for k, v in first.items() if v.is_floating_point()}
    metas = [first_meta]
    last = first
    for path in paths[1:]:
        state, meta = read_state_dict(path)
        if meta.get("preset") != first_meta.get("preset"):
            raise WeightsError(f"{path} holds preset {meta.get('preset')!r}, {paths[0]} holds {first_meta.get('preset')!r}")
        if set(state) != set(first) or any(state[k].shape != first[k].shape for k in first):
            raise WeightsError(f"{path} does not have the tensors of {paths[0]}")
        for k in total:
            total[k] += state[k].double()
        metas.append(meta)
        last = state
    averaged = {k: (total[k] / len(paths)).to(first[k].dtype) if k in total else last[k].clone()
                for k in first}
    order = sorted(range(len(paths)), key=lambda i: int(metas[i].get("steps", i)))
    meta = dict(metas[order[-1]])
    meta["averaged_from"] = ",".join(metas[i].get("steps", paths[i].name) for i in order)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in averaged.items()}, str(out), metadata=meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("snapshots", nargs="+", help="safetensors snapshots of one run (same preset)")
    p.add_argument("--out", required=True, help="the averaged safetensors file")
    args = p.parse_args(argv)
    meta = average_snapshots([Path(s) for s in args.snapshots], Path(args.out))
    print(f"{args.out}: mean of {len(args.snapshots)} snapshots (steps {meta['averaged_from']}), "
          f"sha256 {sha256_file(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
