"""Give zippypoint-tiny weights the low-rank 3x3 descriptor head of zippypoint-tiny-r64, fitted to slim-h64's.

    python scripts/lowrank_descriptor.py --photos ../shared/data/train-images --out runs/tiny-r64-init.safetensors

The tiny preset's 1x1 descriptor conv sees one cell of its 64-channel head; slim-h64's 3x3 descriptor conv sees
a 3x3 neighbourhood, and a 1x1 conv reproduces only about 60 % of the variance of its output. Here, on photos of
the training split: the 3x3 conv from the tiny head to slim-h64's descriptor map is fitted by ridge regression,
its outputs' principal components give the rank-r factorisation (a 3x3 conv onto the top r components, then a
1x1 conv back to the 256 channels, plus the mean), and the r middle channels are scaled by the BatchNorm to a
standard deviation of 1.5 so that they sit inside the ±6 range of their int8 quantiser. Every other tensor is the
tiny file's. A starting point for distillation, not a model to ship.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SOURCE, TEACHER, TARGET = "zippypoint-tiny", "zippypoint-slim-h64", "zippypoint-tiny-r64"
MIDDLE_STD = 1.5


def head_features(net, images):
    """The shared head's output of ``net`` on ``images`` (N, 1, H, W) in [0, 1] (what the descriptor head reads)."""
    from zippypoint.model.network import normalised_input

    return net.head_conv(net.backbone(normalised_input(net, images)))


def lowrank_fit(source, teacher, target, images, ridge: float = 1e-3) -> dict[str, float]:
    """Fill ``target`` (eval) from ``source`` (eval, the tiny preset) with the descriptor head fitted to
    ``teacher``'s descriptors on ``images``; returns the relative errors of the full-rank fit and of the
    factorised head of ``target`` (its own forward pass, int8 fake-quant included)."""
    import torch

    from zippypoint.train.refit import relative_error, ridge_conv_fit

    rank = target.config.descriptor_rank
    state = target.state_dict()
    for key, value in source.state_dict().items():
        if key in state and state[key].shape == value.shape and not key.startswith("desc_"):
            state[key] = value.clone()
    with torch.no_grad():
        head = head_features(source, images)
        wanted = teacher(images)["descriptors"]
        weight, bias = ridge_conv_fit(head, wanted, 3, ridge)
        fitted = torch.nn.functional.conv2d(head, weight, bias, padding=1)
        rows = fitted.permute(0, 2, 3, 1).reshape(-1, fitted.shape[1]).double()
        mean = rows.mean(0)
        values, vectors = torch.linalg.eigh(torch.cov((rows - mean).T))
        basis = vectors.flip(1)[:, :rank]  # (256, r), the top r components
        middle_weight = torch.einsum("dr,dcij->rcij", basis, weight.double())  # the 3x3 conv onto the components
        middle_bias = basis.T @ (bias.double() - mean)
        spread = values.flip(0)[:rank].clamp_min(1e-12).sqrt()  # the components' standard deviations
        gain = MIDDLE_STD / spread
        eps = target.desc_conv2.bn.eps
        state["desc_conv2.conv.weight"] = middle_weight.float()
        state["desc_conv2.bn.running_mean"] = torch.zeros(rank)
        state["desc_conv2.bn.running_var"] = torch.full((rank,), 1.0 - eps)
        state["desc_conv2.bn.weight"] = gain.float()
        state["desc_conv2.bn.bias"] = (gain * middle_bias).float()
        state["desc_out.weight"] = (basis / gain).float().reshape(*basis.shape, 1, 1).contiguous()
        state["desc_out.bias"] = mean.float()
        target.load_state_dict(state, strict=True)
        got = target(images)["descriptors"]
    return {"full_rank": float(relative_error(fitted, wanted).mean()), "factorised": float(relative_error(got, wanted).mean()),
            "variance_kept": float(values.flip(0)[:rank].sum() / values.sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help=f"{SOURCE} weights (default: the shipped file)")
    parser.add_argument("--teacher-weights", type=Path, default=None, help=f"{TEACHER} weights (default: shipped)")
    parser.add_argument("--photos", type=Path, required=True, help="photo folder (the training split is used)")
    parser.add_argument("--count", type=int, default=48, help="photos for the fit")
    parser.add_argument("--out", type=Path, required=True, help="the safetensors file to write")
    args = parser.parse_args(argv)

    from prune_head import load_photos  # this script's folder is on the path when it runs

    from zippypoint.model.registry import create_model, get_preset, load_weights
    from zippypoint.model.weights import save_weights, sha256_file

    def load(preset, path):
        net = create_model(preset)
        load_weights(net, path)
        return net.eval()

    source_path = args.weights or get_preset(SOURCE).weights_path()
    teacher_path = args.teacher_weights or get_preset(TEACHER).weights_path()
    target = create_model(TARGET).eval()
    fit = lowrank_fit(load(SOURCE, source_path), load(TEACHER, teacher_path), target,
                      load_photos(args.photos, args.count, (320, 240)))
    print(f"descriptor head fitted to {TEACHER}'s descriptors: relative error full rank {fit['full_rank']:.3f}, "
          f"rank {target.config.descriptor_rank} (int8) {fit['factorised']:.3f}; "
          f"variance kept by the rank {fit['variance_kept']:.3f}")
    sha = save_weights(target, args.out, {"preset": TARGET, "derived_from": (
        f"{SOURCE} ({source_path.name}, sha256 {sha256_file(source_path)}); descriptor head fitted to {TEACHER}")})
    print(f"wrote {args.out} (sha256 {sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
