"""Cut the binary block at H/2 out of a one-block-stage preset and refit ``down2`` to make up for it, then score both.

    python scripts/cut_h2_block.py --preset zippypoint-tiny-r64 --photos ../shared/data/train-images \\
        --dev DEV/viewpoint --dev ../shared/data/hpatches-dev --out runs/tiny-r64-noh2-init.safetensors

The cut topology is the preset's with ``stage_blocks[0] = 0``: the stride-2 stem feeds ``down2`` directly
(docs/search.md, "No binary block at H/2"). Everything but ``block1b`` is copied; then, on photos of the training
split at 320x240, ``down2``'s 1x1 conv is refitted by ridge regression so that on the stem's output (space-to-depth)
it reproduces, before its BatchNorm, what it computed on ``block1b``'s output (the intercept moved into the BatchNorm
mean). Prints the relative error of that refit and, with ``--dev``, the selection metrics of the preset and of the
cut network (PyTorch fake-quant, deployed post-processing, 320x240/top-300, C3 over 12 RANSAC orders), so that the
cost of the cut before any training can be read. A starting point for distillation, not a model to ship: from
tiny-r64 the file is the preset ``zippypoint-tiny-r64-noh2``'s (``configs/tiny_r64_noh2_distill.json`` starts there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zippypoint.model.config import without_h2_block


def cut(full, images, ridge: float = 1e-3) -> tuple[object, float]:
    """(the cut network filled from ``full`` (eval), relative error of the refitted ``down2`` pre-BatchNorm output
    on ``images`` (N, C, H, W) in [0, 1])."""
    import torch
    import torch.nn.functional as F

    from zippypoint.model.network import ZippyPointNet, normalised_input
    from zippypoint.train.refit import relative_error, ridge_conv_fit

    net = ZippyPointNet(without_h2_block(full.config)).eval()
    state = {k: v.clone() for k, v in full.state_dict().items() if not k.startswith("block1b.")}
    with torch.no_grad():
        stem = full.conv_in(normalised_input(full, images))
        target = full.down2.proj.conv(F.pixel_unshuffle(full.block1b(stem), 2))  # before the BatchNorm
        source = F.pixel_unshuffle(stem, 2)
        weight, bias = ridge_conv_fit(source, target, 1, ridge)
        state["down2.proj.conv.weight"] = weight
        state["down2.proj.bn.running_mean"] = state["down2.proj.bn.running_mean"] - bias
        net.load_state_dict(state, strict=True)
        error = relative_error(net.down2.proj.conv(source) + bias.view(1, -1, 1, 1), target)
    return net, float(error.mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="zippypoint-tiny-r64", help="a preset with one block in stage 1")
    parser.add_argument("--weights", type=Path, default=None, help="its weights (default: the shipped file)")
    parser.add_argument("--photos", type=Path, required=True, help="photo folder (the training split is used)")
    parser.add_argument("--count", type=int, default=32, help="photos for the refit")
    parser.add_argument("--dev", action="append", default=[], help="development set to score both on (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="the safetensors file to write")
    args = parser.parse_args(argv)

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from prune_head import load_photos

    from zippypoint.model.registry import create_model, get_preset, list_models, load_weights
    from zippypoint.model.weights import save_weights, sha256_file

    source = args.weights or get_preset(args.preset).weights_path()
    full = create_model(args.preset)
    try:
        without_h2_block(full.config)
    except ValueError as exc:
        parser.error(f"--preset {args.preset}: {exc}")
    missing = [d for d in args.dev if not Path(d).is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")
    load_weights(full, source)
    full.eval()
    net, error = cut(full, load_photos(args.photos, args.count, (320, 240)))
    print(f"relative error of the refitted down2 (before its BatchNorm) on the fitting photos: {error:.3f}")
    cut_name = next((n for n in list_models() if get_preset(n).config == net.config), None)
    sha = save_weights(net, args.out, {"preset": cut_name or f"{args.preset} with stage_blocks[0] = 0",
                                       "derived_from": f"{args.preset} ({source.name}, sha256 {sha256_file(source)})"})
    print(f"wrote {args.out} (sha256 {sha})")
    if args.dev:
        from zippypoint.train.diagnostics import evaluate_dev

        print("| network | set | rep | loc err px | C3/12 | MMA@3 | correct matches |\n|---|---|---|---|---|---|---|")
        for name, model in ((args.preset, full), ("without the H/2 block", net)):
            for root in args.dev:
                m = evaluate_dev(model, root, (320, 240), 300, (0.0,), ransac_orders=12)["dedupe_0"]
                print(f"| {name} | {Path(root).name} | {m['repeatability']:.3f} | {m['localization_error']:.3f} | "
                      f"{m['correctness_3_orders']:.3f} | {m['mma_3']:.3f} | {m['correct_matches']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
