"""`zippypoint extract`: keypoints and descriptors for images, one .npz per image (or one hloc features.h5)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    from zippypoint.commands._common import add_extractor_args

    p = sub.add_parser("extract", help="detect and describe images; write DIR/<path>.npz",
                       description="Writes DIR/<image path relative to its input folder, suffix .npz> with arrays "
                                   "keypoints [N,2] float32, scores [N] float32 and descriptors [N,32] uint8 "
                                   "(packed 256-bit, LSB-first); sub-folders are mirrored; a second image with the same stem in one "
                                   "folder keeps its suffix (x.jpg -> x.npz, x.png -> x.png.npz). Images are read one "
                                   "at a time; outputs that exist are skipped (resume) unless --overwrite.")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=("npz", "h5"), default="npz",
                   help="npz: one DIR/<path>.npz per image; h5: DIR/features.h5 in hloc's layout "
                        "(one group per image path relative to its input folder; see zippypoint.store.hloc)")
    p.add_argument("--h5-descriptors", choices=("packed", "float"), default="packed",
                   help="with --format h5: packed uint8 bits [32,N] (default) or unit +-1 float16 vectors [256,N] "
                        "for float-only matchers (same nearest neighbours as Hamming)")
    p.add_argument("--overwrite", action="store_true", help="redo images whose output already exists")
    add_extractor_args(p)
    p.set_defaults(func=run)


def progress(items, **kwargs):
    """A tqdm progress bar where tqdm is installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, **kwargs)


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders; returns (image paths, [(path, reason)] for inputs that are not usable)."""
    from zippypoint.io import list_images

    paths, problems = [], []
    for item in inputs:
        try:
            found = list_images(item)
        except (FileNotFoundError, ValueError):
            problems.append((item, "no such file or folder"))
            continue
        if not found:
            problems.append((item, "folder contains no images"))
        paths.extend(found)
    return paths, problems


def output_name(path: Path, inputs: list[str]) -> str:
    """The image's path relative to the input folder that holds it ('/'-separated), or its file name."""
    from zippypoint.store.hloc import image_name

    return image_name(path, inputs)


def reason(path: Path, exc: BaseException) -> str:
    """The error message without the path the failure line already shows."""
    from zippypoint.cli import error_line

    text = error_line(exc)
    for p in (str(path), path.as_posix()):
        text = text.replace(f"{p}: ", "").replace(f": {p}", "")
    return text


def save_npz(target: Path, feats: dict) -> None:
    """Write ``target`` atomically: a crash or a failed write never leaves a partial .npz behind."""
    import os

    import numpy as np

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as f:
            np.savez(f, keypoints=feats["keypoints"], scores=feats["scores"], descriptors=feats["descriptors"])
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    import sys

    import cv2

    from zippypoint.cli import UsageError
    from zippypoint.commands._common import extractor_config, make_extractor
    from zippypoint.io import read_image

    config = extractor_config(args)  # options checked before any work
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder (created if missing)")
    paths, failures = collect_inputs(args.inputs)
    h5 = out / "features.h5"
    done_h5: set[str] = set()
    if args.format == "h5" and h5.is_file() and not args.overwrite:
        from zippypoint.store.hloc import list_names

        done_h5 = set(list_names(h5))
    todo, claimed, skipped = [], {}, 0
    for path in paths:
        name = output_name(path, args.inputs)
        target = out / Path(name).with_suffix(".npz") if args.format == "npz" else None
        if target is not None and str(target) in claimed:  # x.jpg and x.png in one folder: x.npz, x.png.npz
            target = out / f"{name}.npz"
        key = name if target is None else str(target)
        if key in claimed:
            failures.append((str(path), f"writes the same output as {claimed[key]} ({key}); rename one of them"))
            continue
        claimed[key] = path
        if not args.overwrite and (name in done_h5 if target is None else target.is_file()):
            skipped += 1
            continue
        todo.append((path, name, target))
    written = 0
    if todo:
        extractor = make_extractor(args, config)
        out.mkdir(parents=True, exist_ok=True)
        for path, name, target in progress(todo, desc="extract", unit="img", disable=len(todo) < 2):
            try:
                image = read_image(path, max_pixels=config.max_pixels)
                feats = extractor.extract(image)
                if target is None:
                    from zippypoint.store.hloc import write_features

                    write_features(h5, name, feats, (image.shape[1], image.shape[0]),
                                   binary_as_float=args.h5_descriptors == "float")
                else:
                    save_npz(target, feats)
            except (ValueError, TypeError, OSError, MemoryError, cv2.error) as exc:
                failures.append((str(path), reason(path, exc)))
                continue
            written += 1
    for path, why in failures:
        print(f"failed: {path}: {why}", file=sys.stderr)
    where = h5 if args.format == "h5" else out
    skip = f", skipped {skipped} already done (--overwrite redoes them)" if skipped else ""
    print(f"wrote {written} image(s) to {where}{skip}; {len(failures)} failed")
    return 1 if failures else 0
