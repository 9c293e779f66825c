"""Derive the grayscale presets' weights from the RGB ones, without training.

    python scripts/derive_gray_weights.py [--check-photos ../shared/data/train-images]

A gray image fed to the RGB network is the same value in all three channels, so the input convolution's output is
the sum of its three per-channel kernels applied to that one channel: summing the input conv's weights over the
input channels gives a one-channel network that computes exactly what the RGB network computes on the gray image
(the shipped RGB weights were trained with half of the photos turned gray, ``photometric.gray_p = 0.5``). Every
other tensor is copied unchanged. Writes ``zippypoint/weights/<gray preset>.safetensors``, its ``.sha256`` and a
card; ``--check-photos`` also measures, on real photos, how far the gray network's maps are from the RGB network's
on the gray-replicated image (the int8 fake quantisation of the summed input kernel is the only difference).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAIRS = {"zippypoint-gray": "zippypoint", "zippypoint-fp-gray": "zippypoint-fp"}
INPUT_KERNEL = "conv_in.conv.weight"


def derive(gray: str, rgb: str) -> dict:
    """Write the weights of preset ``gray`` from the shipped weights of preset ``rgb``; returns the card."""
    from zippypoint.model.registry import WEIGHTS_DIR, _expected_sha256, create_model, get_preset
    from zippypoint.model.weights import read_state_dict, save_weights, sha256_file

    source = get_preset(rgb).weights_path()
    state, meta = read_state_dict(source)
    if sha256_file(source) != _expected_sha256(get_preset(rgb)):
        raise SystemExit(f"{source} does not match its recorded sha256; reinstall before deriving")
    if state[INPUT_KERNEL].shape[1] != 3:
        raise SystemExit(f"{rgb}: expected an RGB input kernel, got {tuple(state[INPUT_KERNEL].shape)}")
    state[INPUT_KERNEL] = state[INPUT_KERNEL].sum(dim=1, keepdim=True)
    model = create_model(gray)
    model.load_state_dict(state, strict=True)
    target = WEIGHTS_DIR / get_preset(gray).weights
    sha = save_weights(model, target, {"preset": gray, "stage": meta.get("stage", ""),
                                       "derived_from": f"{rgb} ({source.name}, sha256 {sha256_file(source)})"})
    target.with_suffix(".sha256").write_text(f"{sha}  {target.name}\n")
    return {"preset": gray, "sha256": sha, "file": target.name,
            "derived_from": {"preset": rgb, "file": source.name, "sha256": sha256_file(source),
                             "steps": meta.get("steps")},
            "derivation": "the input conv's kernel summed over its three input channels (exact for a gray image "
                          "given to the RGB network as three equal channels); every other tensor copied",
            "training": "none beyond the source's (see its card); the source trained with half of the photos gray",
            "command": "python scripts/derive_gray_weights.py --check-photos ../shared/data/train-images"}


def check(gray: str, rgb: str, photos: Path, count: int = 8) -> dict:
    """Differences of the dense maps between the gray network on gray photos and the RGB network on the same photos
    as three equal channels (640x480): the largest score and keypoint differences over all photos, and the largest
    per-photo mean descriptor difference."""
    import numpy as np
    import torch

    from zippypoint.io import list_images, prepare_image, read_image
    from zippypoint.model.registry import create_model

    nets = {name: create_model(name, pretrained=True).eval() for name in (gray, rgb)}
    paths = list_images(photos)
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, count).astype(int)]
    worst = {"scores": 0.0, "keypoints_px": 0.0, "descriptors": 0.0}
    for path in paths:
        one = torch.from_numpy(prepare_image(read_image(path), 1, (640, 480))[0])
        with torch.no_grad():
            a = nets[gray](one)
            b = nets[rgb](one.expand(-1, 3, -1, -1).contiguous())
        worst["scores"] = max(worst["scores"], float((a["scores"] - b["scores"]).abs().max()))
        worst["keypoints_px"] = max(worst["keypoints_px"], float((a["keypoints"] - b["keypoints"]).abs().max()))
        worst["descriptors"] = max(worst["descriptors"], float((a["descriptors"] - b["descriptors"]).abs().mean()))
    return {"photos": len(paths), "size": "640x480", "max_abs_score_difference": worst["scores"],
            "max_abs_keypoint_difference_px": worst["keypoints_px"],
            "mean_abs_descriptor_difference": worst["descriptors"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check-photos", type=Path, default=None, help="photos to compare gray and RGB networks on")
    args = p.parse_args()
    from zippypoint.model.registry import WEIGHTS_DIR

    for gray, rgb in PAIRS.items():
        card = derive(gray, rgb)
        if args.check_photos is not None:
            card["check_against_rgb_on_gray_images"] = check(gray, rgb, args.check_photos)
        path = WEIGHTS_DIR / f"{gray}.card.json"
        path.write_text(json.dumps(card, indent=2) + "\n")
        print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
