"""Initial weights of the one-block-per-stage preset (``zippypoint-slim``) from the shipped lean weights.

    python scripts/init_slim_from_lean.py --out runs/slim-init.safetensors

Each stage of the slim network keeps one block, in the place of the lean network's second block
(``block{i}b``, with the hard-swish after the sum), and takes the weights of the lean network's *first* block
(``block{i}a``): that block was trained on the stage's input, which is what the one block sees (measured on the
held-out viewpoint set before any training: C3 0.33 / MMA@3 0.50 this way, 0.13 / 0.37 keeping the second
blocks' weights). Stage 4's first block has the c3 -> c4 projection the slim block needs. The stem, the
downsampling convs and the heads are copied. The result is a starting point for distillation, not a model to
ship.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def slim_state_from_lean(lean_state: dict, slim_keys) -> dict:
    """The slim network's state dict (its keys ``slim_keys``) taken from the lean one; KeyError names a missing
    tensor."""
    out = {}
    for key in slim_keys:
        block, _, rest = key.partition(".")
        is_stage_block = len(block) == 7 and block.startswith("block") and block.endswith("b")
        source = f"{block[:-1]}a.{rest}" if is_stage_block else key
        if source not in lean_state:
            raise KeyError(f"{key}: no {source!r} in the lean weights")
        out[key] = lean_state[source].clone()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the safetensors file to write")
    parser.add_argument("--lean", type=Path, default=None, help="lean weights (default: the shipped file)")
    args = parser.parse_args(argv)
    from zippypoint.model.registry import _expected_sha256, create_model, get_preset
    from zippypoint.model.weights import read_state_dict, save_weights, sha256_file

    lean = args.lean or get_preset("zippypoint-lean").weights_path()
    state, meta = read_state_dict(lean)
    if args.lean is None and sha256_file(lean) != _expected_sha256(get_preset("zippypoint-lean")):
        raise SystemExit(f"{lean} does not match its recorded sha256; reinstall before deriving")
    model = create_model("zippypoint-slim")
    model.load_state_dict(slim_state_from_lean(state, model.state_dict().keys()), strict=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sha = save_weights(model, args.out, {"preset": "zippypoint-slim", "stage": meta.get("stage", ""),
                                         "derived_from": f"zippypoint-lean ({lean.name}, sha256 {sha256_file(lean)})"})
    print(f"wrote {args.out} (sha256 {sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
