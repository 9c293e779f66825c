"""Write tests/golden/<preset>.npz: the shipped model's output on two fixed images (regression reference).

Run after shipping new weights: python scripts/make_golden.py [--preset zippypoint]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

GOLDEN_IMAGES = ("coffee", "astronaut")
GOLDEN_SIZE = (320, 240)
GOLDEN_KEYPOINTS = 300


def golden_features(preset: str) -> dict[str, np.ndarray]:
    import cv2

    from zippypoint.demo import sample_photo
    from zippypoint.extractor import Extractor, ExtractorConfig

    extractor = Extractor(preset, config=ExtractorConfig(max_keypoints=GOLDEN_KEYPOINTS))
    out = {}
    for name in GOLDEN_IMAGES:
        image = cv2.resize(sample_photo(name), GOLDEN_SIZE, interpolation=cv2.INTER_AREA)
        feats = extractor.extract(image)
        for key, value in feats.items():
            out[f"{name}_{key}"] = value
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="zippypoint")
    args = p.parse_args()
    target = Path(__file__).resolve().parent.parent / "tests" / "golden" / f"{args.preset}.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, **golden_features(args.preset))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
