"""Narrow the shared head of a lean-topology network (``head_width``) and refit the three output convs.

    python scripts/prune_head.py --width 64 --photos ../shared/data/train-images --out runs/slim-h64-init.safetensors

The shared int8 head conv (``head_conv``, c4 -> head_width, 3x3) feeds the score, location and descriptor output
convs; at H/8 it and the descriptor conv are the two largest int8 layers of the slim network. This keeps the
``--width`` head channels that carry the most of the outputs (mean squared activation on the photos times the
squared norm of the output weights reading the channel, each head normalised by the variance of its output), then
refits the score, location and descriptor convs on the kept channels by ridge regression onto the full head's
outputs (3x3 patches of the kept channels at every cell of the photos), so the narrow network starts close to the
wide one. Photos come from the training split only (``zippypoint.train.split``). The result is a starting point
for distillation, not a model to ship.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def head_features(net, images):
    """(head features (N, C, h, w), the three output convs' outputs (N, 1 + 2 + D, h, w)) of ``net`` (eval)."""
    import torch

    from zippypoint.model.network import backbone_features, normalised_input

    with torch.no_grad():
        feat = net.head_conv(backbone_features(net, normalised_input(net, images)))
        outs = torch.cat([net.score_out(feat), net.loc_out(feat), net.desc_out(feat)], 1)
    return feat, outs


def choose_channels(feat, net, width: int):
    """Indices (sorted) of the ``width`` head channels that carry the most of the three outputs."""
    import torch

    energy = feat.pow(2).mean(dim=(0, 2, 3))  # (C,)
    score = torch.zeros_like(energy)
    for conv in (net.score_out, net.loc_out, net.desc_out):
        w = conv.weight.detach()  # (out, C, 3, 3)
        per_channel = w.pow(2).sum(dim=(0, 2, 3))
        score += energy * per_channel / (energy * per_channel).sum().clamp_min(1e-12)
    return torch.sort(torch.topk(score, width).indices).values


def refit_outputs(feat, outs, keep, ridge: float = 1e-3):
    """Least-squares weights (O, K, 3, 3) and biases (O,) mapping 3x3 patches of channels ``keep`` to ``outs``."""
    from zippypoint.train.refit import ridge_conv_fit

    return ridge_conv_fit(feat[:, keep], outs, 3, ridge)


def pruned_state(wide, narrow, keep, weight, bias) -> dict:
    """The narrow network's state dict: everything copied from ``wide`` except the head conv (kept channels) and
    the three output convs (refitted)."""
    state = {k: v.clone() for k, v in wide.state_dict().items()}
    state["head_conv.conv.weight"] = state["head_conv.conv.weight"][keep].clone()
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"head_conv.bn.{name}"] = state[f"head_conv.bn.{name}"][keep].clone()
    split = {"score_out": (0, 1), "loc_out": (1, 3), "desc_out": (3, weight.shape[0])}
    for name, (a, b) in split.items():
        state[f"{name}.weight"] = weight[a:b].contiguous()
        state[f"{name}.bias"] = bias[a:b].contiguous()
    expected = narrow.state_dict()
    bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if bad:
        raise ValueError(f"pruned state does not fit the narrow network: {bad[:5]}")
    return {k: state[k] for k in expected}


def load_photos(folder: Path, count: int, size: tuple[int, int]):
    import cv2
    import numpy as np
    import torch

    from zippypoint.io import list_images
    from zippypoint.train.split import is_dev_photo

    photos = [p for p in list_images(folder) if not is_dev_photo(p)]
    if not photos:
        raise SystemExit(f"no training photos under {folder}")
    picked = [photos[i] for i in np.linspace(0, len(photos) - 1, min(count, len(photos))).astype(int)]
    batch = []
    for p in picked:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise SystemExit(f"cannot read {p}")
        batch.append(cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(batch)[:, None])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="zippypoint-slim", help="the wide preset (gray, shared head)")
    parser.add_argument("--weights", type=Path, default=None, help="its weights (default: the shipped file)")
    parser.add_argument("--width", type=int, default=64, help="head channels to keep")
    parser.add_argument("--photos", type=Path, required=True, help="photo folder (the training split is used)")
    parser.add_argument("--count", type=int, default=48, help="photos for the channel choice and the refit")
    parser.add_argument("--out", type=Path, required=True, help="the safetensors file to write")
    args = parser.parse_args(argv)

    from zippypoint.model.network import ZippyPointNet
    from zippypoint.model.registry import create_model, get_preset, load_weights
    from zippypoint.model.weights import save_weights, sha256_file
    from zippypoint.train.refit import relative_error

    preset = get_preset(args.preset)
    if not preset.config.shared_head or preset.config.in_channels != 1:
        raise SystemExit(f"{args.preset}: expected a gray preset with a shared head")
    hw = preset.config.head_width or preset.config.widths[4]
    if not 0 < args.width < hw:
        raise SystemExit(f"--width must be in 1..{hw - 1}, got {args.width}")
    source = args.weights or preset.weights_path()
    wide = create_model(args.preset)
    load_weights(wide, source)
    wide.eval()
    narrow = ZippyPointNet(dataclasses.replace(preset.config, head_width=args.width)).eval()
    feat, outs = head_features(wide, load_photos(args.photos, args.count, (320, 240)))
    keep = choose_channels(feat, wide, args.width)
    weight, bias = refit_outputs(feat, outs, keep)
    narrow.load_state_dict(pruned_state(wide, narrow, keep, weight, bias), strict=True)
    check = load_photos(args.photos, 8, (320, 240))
    _, approx = head_features(narrow, check)
    _, target = head_features(wide, check)
    rel = relative_error(approx, target)
    print(f"kept {args.width} of {hw} head channels; relative error of the refitted outputs: score "
          f"{rel[0]:.3f}, location {rel[1:3].mean():.3f}, descriptor {rel[3:].mean():.3f}")
    sha = save_weights(narrow, args.out, {"preset": f"{args.preset} head_width={args.width}",
                                          "derived_from": f"{args.preset} ({source.name}, sha256 "
                                                          f"{sha256_file(source)})"})
    print(f"wrote {args.out} (sha256 {sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
