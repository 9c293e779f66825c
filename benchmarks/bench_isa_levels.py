"""Which runtime is fastest on CPUs with fewer instruction-set extensions: the same `zippypoint benchmark` run once
per ISA level, capped with oneDNN's ``ONEDNN_MAX_CPU_ISA`` (honoured by OpenVINO's CPU plugin and by PyTorch's
oneDNN convolutions; PyTorch's own kernels are capped with ``ATEN_CPU_CAPABILITY``).

    python benchmarks/bench_isa_levels.py --out runs/isa --levels AVX2,AVX512_CORE,AVX512_CORE_VNNI,DEFAULT \\
        --methods zippypoint-lean:openvino-int8,zippypoint-lean:openvino,zippypoint:openvino-int8,xfeat

ONNX Runtime and OpenCV pick their kernels from the CPU flags and cannot be capped this way, so they are left out
(a capped run of them would not be what the named CPU runs). What the levels stand for: AVX2 = an x86 CPU without
AVX-512 (most laptops and desktops before 2022, AMD before Zen 4); AVX512_CORE = AVX-512 without VNNI (Skylake-SP);
AVX512_CORE_VNNI = with int8 dot products, no AMX (Cascade Lake to Ice Lake, Zen 4); DEFAULT = this CPU.
Writes ``isa_levels.json`` and ``isa_levels.md`` (fps per level, method and resolution) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ATEN = {"AVX2": "avx2", "AVX512_CORE": "avx512", "AVX512_CORE_VNNI": "avx512"}


def run_level(level: str, methods: str, out: Path, extra: list[str]) -> dict:
    env = dict(os.environ)
    if level != "DEFAULT":
        env["ONEDNN_MAX_CPU_ISA"] = level
        env["ATEN_CPU_CAPABILITY"] = ATEN.get(level, "avx512")
    folder = out / level.lower()
    cmd = [sys.executable, "-m", "zippypoint.cli", "benchmark", "--out", str(folder), "--methods", methods,
           "--no-profile", "--matching-sizes", "none", "--quiet", *extra]
    subprocess.run(cmd, env=env, check=True)
    return json.loads((folder / "benchmark.json").read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--levels", default="AVX2,AVX512_CORE,AVX512_CORE_VNNI,DEFAULT")
    parser.add_argument("--methods", default="zippypoint-lean:openvino-int8,zippypoint-lean:openvino,"
                                             "zippypoint:openvino-int8,zippypoint:openvino,xfeat")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    levels = [v.strip().upper() for v in args.levels.split(",") if v.strip()]
    bad = [v for v in levels if v not in (*ATEN, "DEFAULT")]
    if bad:
        parser.error(f"unknown levels {bad}; choose from {[*ATEN, 'DEFAULT']}")
    extra = ["--runs", str(args.runs), "--threads", str(args.threads)]
    results = {level: run_level(level, args.methods, args.out, extra) for level in levels}
    methods = args.methods.split(",")
    sizes = list(next(iter(results.values()))["resolutions"])
    table = {level: {s: {m: res["resolutions"][s]["methods"].get(m, {}).get("fps") for m in methods} for s in sizes}
             for level, res in results.items()}
    lines = ["| method | size | " + " | ".join(levels) + " |", "|---|---|" + "---:|" * len(levels)]
    for s in sizes:
        for m in methods:
            cells = [table[level][s][m] for level in levels]
            lines.append(f"| {m} | {s} | " + " | ".join(f"{v:.1f}" if v else "-" for v in cells) + " |")
    env = next(iter(results.values()))["environment"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "isa_levels.json").write_text(json.dumps({"cpu": env["cpu"], "isa": env["isa"], "fps": table,
                                                          "runs": args.runs, "threads": args.threads}, indent=2))
    (args.out / "isa_levels.md").write_text(f"fps (median end-to-end extraction) on {env['cpu']}, {args.threads} "
                                            f"threads, capped per row:\n\n" + "\n".join(lines) + "\n")
    print((args.out / "isa_levels.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
