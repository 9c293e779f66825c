"""`zippypoint extract`: keypoints and descriptors for images, one .npz per image."""

from __future__ import annotations

import argparse

from zippypoint.commands._common import add_extractor_args, make_extractor


def register(sub) -> None:
    p = sub.add_parser("extract", help="detect and describe images; write DIR/<stem>.npz",
                       description="Writes DIR/<image stem>.npz with arrays keypoints [N,2] float32, "
                                   "scores [N] float32 and descriptors [N,32] uint8 (packed 256-bit, LSB-first).")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=("npz", "h5"), default="npz",
                   help="npz: one DIR/<stem>.npz per image; h5: DIR/features.h5 in hloc's layout "
                        "(one group per image path relative to its input folder; see zippypoint.store.hloc)")
    add_extractor_args(p)
    p.set_defaults(func=run)


def progress(items, **kwargs):
    """A tqdm progress bar where tqdm is installed (the torch-free deployment install may lack it)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, **kwargs)


def collect_inputs(inputs: list[str]) -> tuple[list, list[tuple[str, str]]]:
    """Expand folders; returns (image paths, [(path, reason)] for inputs that are not usable)."""
    from pathlib import Path

    from zippypoint.io import IMAGE_SUFFIXES

    paths, problems = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((item, "folder contains no images"))
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            problems.append((item, "no such file or folder"))
    return paths, problems


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from zippypoint.model.weights import WeightsError

    paths, failures = collect_inputs(args.inputs)
    try:
        extractor = make_extractor(args)
    except (WeightsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stems: dict[str, Path] = {}
    written = 0
    for path in progress(paths, desc="extract", unit="img", disable=len(paths) < 2):
        if args.format == "h5":
            from zippypoint.io import read_image
            from zippypoint.store.hloc import image_name, write_features

            try:
                image = read_image(path)
                feats = extractor.extract(image)
                write_features(out / "features.h5", image_name(path, args.inputs), feats,
                               (image.shape[1], image.shape[0]))
            except (ValueError, TypeError) as exc:
                failures.append((str(path), str(exc)))
                continue
            written += 1
            continue
        stem = path.stem
        if stem in stems:
            failures.append((str(path), f"same stem as {stems[stem]}; its .npz would be overwritten"))
            continue
        try:
            feats = extractor.extract(path)
        except (ValueError, TypeError) as exc:
            failures.append((str(path), str(exc)))
            continue
        stems[stem] = path
        np.savez(out / f"{stem}.npz", keypoints=feats["keypoints"], scores=feats["scores"],
                 descriptors=feats["descriptors"])
        written += 1
    for path, reason in failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    what = f"{written} image(s) to {out / 'features.h5'}" if args.format == "h5" else f"{written} file(s) to {out}"
    print(f"wrote {what}; {len(failures)} failed")
    return 1 if failures else 0
