"""`zippypoint info`: presets, their input contracts, parameters and MACs, shipped weights and packaged models."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("info", help="list model presets (parameters and MACs where torch is installed), "
                                    "shipped weights and packaged deployable models")
    p.add_argument("--json", default=None, help="also write the table as JSON")
    p.set_defaults(func=run)


def preset_rows() -> list[dict]:
    """One row per preset; parameter and MAC counts only where torch is importable (they build the network)."""
    import importlib.util

    from zippypoint.model.registry import get_preset, list_models
    from zippypoint.resolve import default_runtime
    from zippypoint.runtime.model_cache import packaged_model_path

    counting = importlib.util.find_spec("torch") is not None
    rows = []
    for name in list_models():
        preset = get_preset(name)
        path = preset.weights_path()
        formats = ("openvino-int8", "openvino", "onnx-int8")
        packaged = [p.name for p in (packaged_model_path(name, fmt) for fmt in formats) if p]
        row = {"name": name, "description": preset.description, "input": preset.input_contract,
               "weights": "shipped" if path and path.exists() else "none",
               "packaged": ", ".join(packaged) or None, "default_runtime": default_runtime(name)}
        if counting:
            from zippypoint.model.complexity import count_complexity
            from zippypoint.model.registry import create_model

            model = create_model(name)
            small = count_complexity(model, 240, 320)
            large = count_complexity(model, 480, 640)
            row.update({"params_M": small["params"] / 1e6, "binary_params_M": small["binary_params"] / 1e6,
                        "gmac_320x240": small["macs"] / 1e9, "gmac_640x480": large["macs"] / 1e9,
                        "binary_gmac_640x480": large["binary_macs"] / 1e9})
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    rows = preset_rows()
    counted = "params_M" in rows[0]
    if counted:
        print("| preset | params (M) | binary params (M) | GMAC 320x240 | GMAC 640x480 | binary GMAC 640x480 | weights "
              "| packaged models |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['params_M']:.3f} | {r['binary_params_M']:.3f} | {r['gmac_320x240']:.2f} | "
                  f"{r['gmac_640x480']:.2f} | {r['binary_gmac_640x480']:.2f} | {r['weights']} | "
                  f"{r['packaged'] or '-'} |")
    else:
        print("| preset | weights | packaged models |")
        print("|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['weights']} | {r['packaged'] or '-'} |")
    print()
    for r in rows:
        print(f"{r['name']}: {r['description']}; input {r['input']}; default runtime here: {r['default_runtime']}")
    from zippypoint.machine import cpu_model, isa_flags, prefers_one_bit_ir
    from zippypoint.model.registry import DEFAULT_PRESET, PAPER_PRESET

    print(f"\ndefault preset: {DEFAULT_PRESET} (what every command runs without --model; the paper topology is "
          f"`{PAPER_PRESET}`)")

    flags = isa_flags()
    why = ("x86 without AMX: the packaged 1-bit OpenVINO IR by default, the faster one there"
           if prefers_one_bit_ir(flags) else "the packaged int8 OpenVINO IR by default")
    print(f"\nCPU: {cpu_model()}; flags: {' '.join(f for f, on in flags.items() if on) or 'unknown'} ({why})")
    if not counted:
        print("\nparameter and MAC counts build the network and need torch: pip install 'zippypoint[torch]'")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
