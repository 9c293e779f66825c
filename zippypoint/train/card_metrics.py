"""Record a deployed evaluation in a preset's model card, checked against the files the card describes.

    python -m zippypoint.train.card_metrics --preset zippypoint-slim-h64 --method openvino:zippypoint-slim-h64 \
        runs/eval-vp runs/eval-vp640 runs/eval-il runs/eval-hp

Each argument is a ``zippypoint evaluate`` output folder (or its ``results.json``). The method's results are
taken only if they were produced by the shipped files: for the PyTorch runtime the weights' sha256 recorded in
the results must be the card's; for an export runtime the model file's sha256 must be that of the packaged export,
whose card must name the shipped weights. The card's ``metrics`` block is replaced by one entry per results file
(data set folder, size, top-k): C3, C3 over the RANSAC orders, MMA@3, repeatability, localisation error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zippypoint.eval.report import read_results
from zippypoint.model.registry import WEIGHTS_DIR, get_preset


def _check_provenance(settings: dict, method: str, weights_card: dict, model_card: dict | None) -> None:
    runtime = method.partition(":")[0] if ":" in method else "torch"
    if runtime == "torch":
        if settings.get("weights_sha256") != weights_card["sha256"]:
            raise ValueError(f"{method}: evaluated weights {settings.get('weights_sha256')!r} are not the card's "
                             f"{weights_card['sha256']!r}")
        return
    digest = settings.get("model_sha256", settings.get("onnx_sha256"))  # as zippypoint.methods.ours records it
    if model_card is None:
        raise ValueError(f"{method}: no packaged {runtime} export of {weights_card['preset']!r} to check against")
    if digest != model_card["sha256"]:
        raise ValueError(f"{method}: evaluated model file {digest!r} is not the packaged {model_card['file']} "
                         f"({model_card['sha256']!r}); re-run the evaluation on the packaged file")
    if model_card.get("weights_sha256") != weights_card["sha256"]:
        raise ValueError(f"{model_card['file']} was exported from weights {model_card.get('weights_sha256')!r}, "
                         f"not the shipped {weights_card['sha256']!r}; repackage it first")


def card_metrics(results: list[dict], method: str, weights_card: dict, model_card: dict | None = None) -> dict:
    """The ``metrics`` block for ``weights_card`` from ``zippypoint evaluate`` results of ``method``."""
    if not results:
        raise ValueError("no evaluation results given")
    block: dict = {"method": method}
    environments = set()
    for res in results:
        entry = res.get("methods", {}).get(method)
        if entry is None:
            raise ValueError(f"{res['dataset']['path']}: no results for {method!r} "
                             f"(methods: {sorted(res.get('methods', {}))})")
        env = res["environment"]
        environments.add(f"{env.get('cpu', 'unknown CPU')}, {env.get('cpu_count', '?')} cores")
        orders = res["protocol"].get("ransac_orders")
        for size, per_size in entry["resolutions"].items():
            _check_provenance(per_size["settings"], method, weights_card, model_card)
            s = per_size["summary"]
            key = f"{Path(res['dataset']['path']).name}_{size}_top{per_size['top_k']}"
            block[key] = {"pairs": s["pairs"], "c3": round(s["correctness_3"], 3),
                          "c3_orders": round(s["correctness_3_orders"], 3), "ransac_orders": orders,
                          "mma3": round(s["mma"]["3"], 3), "repeatability": round(s["repeatability"], 3),
                          "localization_error_px": round(s["localization_error"], 3)}
    block["runtime"] = f"{method} on {'; '.join(sorted(environments))}; zippypoint evaluate"
    return block


def update_card(preset: str, method: str, paths: list[str | Path], dest: Path = WEIGHTS_DIR) -> dict:
    """Replace the ``metrics`` of ``dest/<preset>.card.json`` with ``card_metrics`` of the results at ``paths``."""
    get_preset(preset)  # validates the name
    card_path = Path(dest) / f"{preset}.card.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} not found: release the weights first (zippypoint.train.release)")
    card = json.loads(card_path.read_text())
    model_card = None
    if ":" in method:
        from zippypoint.runtime.model_cache import packaged_card

        runtime, _, target = method.partition(":")
        if target != preset:
            raise ValueError(f"method {method!r} does not run preset {preset!r}")
        model_card = packaged_card(preset, runtime, Path(dest))
    elif method != preset:
        raise ValueError(f"method {method!r} does not run the shipped weights of {preset!r}")
    card["metrics"] = card_metrics([read_results(p) for p in paths], method, card, model_card)
    card_path.write_text(json.dumps(card, indent=2))
    return card["metrics"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--method", default=None, help="evaluated method name (default: openvino:<preset>)")
    p.add_argument("results", nargs="+", help="`zippypoint evaluate` output folders or results.json files")
    args = p.parse_args(argv)
    metrics = update_card(args.preset, args.method or f"openvino:{args.preset}", args.results)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
