"""Cut zippypoint-slim-h64 down to zippypoint-tiny: stage 4 without its widening, a 1x1 descriptor conv.

    python scripts/shrink_stage4.py --photos ../shared/data/train-images --out runs/tiny-init.safetensors

slim-h64's last binary block widens 128 -> 256 channels (with an int8 1x1 projection on its shortcut) and the
shared head conv reads all 256; its descriptor output conv is 3x3. The tiny preset keeps 128 channels there (an
identity shortcut) and a 1x1 descriptor conv. Everything before stage 4 is copied. The block keeps the 128 of its
256 output channels that carry the most of the head's input (mean squared activation on the photos times the
squared norm of the head weights reading the channel); then, on photos of the training split, the head conv is
refitted (ridge regression of 3x3 patches of the new block's output onto the wide head conv's output before its
BatchNorm, the intercept moved into the BatchNorm mean), and the score, location (3x3) and descriptor (1x1)
output convs onto the wide network's outputs. A starting point for distillation, not a model to ship.
"""

from __future__ import annotations

import argparse
from pathlib import Path

WIDE, NARROW = "zippypoint-slim-h64", "zippypoint-tiny"


def stage4_input(net, images):
    """The input of block4b (the output of stage 3) of ``net`` on ``images`` (N, 1, H, W) in [0, 1], taken from the
    network's own backbone pass."""
    from zippypoint.model.network import normalised_input

    captured = []
    handle = net.block4b.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        net.backbone(normalised_input(net, images))
    finally:
        handle.remove()
    return captured[0]


def outputs(net, head):
    import torch

    return torch.cat([net.score_out(head), net.loc_out(head), net.desc_out(head)], 1)


def shrink(wide, narrow, images, ridge: float = 1e-3) -> dict[str, float]:
    """Fill ``narrow`` (eval) from ``wide`` (eval) as the module docstring says; returns the relative errors of the
    refitted signals on ``images``."""
    import torch

    from zippypoint.train.refit import relative_error, ridge_conv_fit

    state = narrow.state_dict()
    for key, value in wide.state_dict().items():
        if key in state and state[key].shape == value.shape and not key.startswith(
                ("block4b.", "head_conv.", "score_out.", "loc_out.", "desc_out.")):
            state[key] = value.clone()
    with torch.no_grad():
        x3 = stage4_input(wide, images)
        f_wide = wide.block4b(x3)
        z_wide = wide.head_conv.conv(f_wide)  # before the BatchNorm
        out_wide = outputs(wide, wide.head_conv(f_wide))
        w_head = wide.head_conv.conv.weight.detach()
        carry = f_wide.pow(2).mean(dim=(0, 2, 3)) * w_head.pow(2).sum(dim=(0, 2, 3))
        keep = torch.sort(torch.topk(carry, narrow.config.widths[4]).indices).values
        for name in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
            state[f"block4b.{name}"] = wide.state_dict()[f"block4b.{name}"][keep].clone()
        for name in ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
            state[f"head_conv.{name}"] = wide.state_dict()[f"head_conv.{name}"].clone()
        narrow.load_state_dict(state, strict=True)
        f_narrow = narrow.block4b(x3)
        weight, bias = ridge_conv_fit(f_narrow, z_wide, 3, ridge)
        state["head_conv.conv.weight"] = weight
        state["head_conv.bn.running_mean"] = state["head_conv.bn.running_mean"] - bias
        narrow.load_state_dict(state, strict=True)
        head = narrow.head_conv(f_narrow)
        w3, b3 = ridge_conv_fit(head, out_wide[:, :3], 3, ridge)
        w1, b1 = ridge_conv_fit(head, out_wide[:, 3:], 1, ridge)
        state["score_out.weight"], state["score_out.bias"] = w3[:1].contiguous(), b3[:1].contiguous()
        state["loc_out.weight"], state["loc_out.bias"] = w3[1:].contiguous(), b3[1:].contiguous()
        state["desc_out.weight"], state["desc_out.bias"] = w1, b1
        narrow.load_state_dict(state, strict=True)
        z_narrow = narrow.head_conv.conv(f_narrow)
        out_narrow = outputs(narrow, narrow.head_conv(f_narrow))
    rel_head = relative_error(z_narrow, z_wide)
    rel = relative_error(out_narrow, out_wide)
    return {"head": float(rel_head.mean()), "score": float(rel[0]), "location": float(rel[1:3].mean()),
            "descriptor": float(rel[3:].mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help=f"{WIDE} weights (default: the shipped file)")
    parser.add_argument("--photos", type=Path, required=True, help="photo folder (the training split is used)")
    parser.add_argument("--count", type=int, default=48, help="photos for the channel choice and the refits")
    parser.add_argument("--out", type=Path, required=True, help="the safetensors file to write")
    args = parser.parse_args(argv)

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from prune_head import load_photos

    from zippypoint.model.registry import create_model, get_preset, load_weights
    from zippypoint.model.weights import save_weights, sha256_file

    source = args.weights or get_preset(WIDE).weights_path()
    wide = create_model(WIDE)
    load_weights(wide, source)
    wide.eval()
    narrow = create_model(NARROW).eval()
    fit = shrink(wide, narrow, load_photos(args.photos, args.count, (320, 240)))
    print("relative error of the refitted signals on the fitting photos: " +
          ", ".join(f"{k} {v:.3f}" for k, v in fit.items()))
    sha = save_weights(narrow, args.out, {"preset": NARROW,
                                          "derived_from": f"{WIDE} ({source.name}, sha256 {sha256_file(source)})"})
    print(f"wrote {args.out} (sha256 {sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
