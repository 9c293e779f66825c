"""`zippypoint info`: presets, their input contracts, parameters and MACs, and shipped weights."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("info", help="list model presets with parameters and MACs at 320x240 and 640x480")
    p.add_argument("--json", default=None, help="also write the table as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from zippypoint.model.complexity import count_complexity
    from zippypoint.model.registry import create_model, get_preset, list_models

    rows = []
    for name in list_models():
        preset = get_preset(name)
        model = create_model(name)
        small = count_complexity(model, 240, 320)
        large = count_complexity(model, 480, 640)
        path = preset.weights_path()
        rows.append({"name": name, "description": preset.description, "input": preset.input_contract,
                     "params_M": small["params"] / 1e6, "binary_params_M": small["binary_params"] / 1e6,
                     "gmac_320x240": small["macs"] / 1e9, "gmac_640x480": large["macs"] / 1e9,
                     "binary_gmac_640x480": large["binary_macs"] / 1e9,
                     "weights": "shipped" if path and path.exists() else "none"})
    print("| preset | params (M) | binary params (M) | GMAC 320x240 | GMAC 640x480 | binary GMAC 640x480 | weights |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['params_M']:.3f} | {r['binary_params_M']:.3f} | {r['gmac_320x240']:.2f} | "
              f"{r['gmac_640x480']:.2f} | {r['binary_gmac_640x480']:.2f} | {r['weights']} |")
    print()
    for r in rows:
        print(f"{r['name']}: {r['description']}; input {r['input']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
