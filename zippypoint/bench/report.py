"""Benchmark outputs: ``benchmark.json`` (machines), ``benchmark.md`` (people), ``speed.png``,
``speed_vs_accuracy.png`` and ``profile_<method>.md`` / ``.png``.

Structure of the results (``benchmark.json``): ``schema``, ``settings`` (resolutions with top-k, runs,
warm-up, threads, methods, photos), ``environment`` (CPU, ISA flags, cores, threads, library versions, load
average at start and end), ``weights`` (our presets' weights), ``resolutions[<WxH>].methods[<name>]`` with
``runtime``, ``weights``, ``keypoints``, ``stages`` (pre / network / post for our runtimes: median_ms,
p90_ms, ...), ``end_to_end``, ``fps`` (1000 / median end-to-end ms), ``matching`` (one pair), ``accuracy``
(C3 when an evaluation was given); ``matching_throughput`` rows; ``profiles``; ``summary``; ``skipped`` and
``failed`` with reasons. Plots use matplotlib's object API with the Agg canvas (no global backend switch).
"""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import numpy as np

from zippypoint.viz import agg_figure

STAGES = ("pre", "network", "post")
STAGE_COLOURS = {"pre": "#9ecae1", "network": "#3182bd", "post": "#fd8d3c"}


def safe_name(name: str) -> str:
    from zippypoint.eval.runner import safe_name as _safe

    return _safe(name.replace(":", "_"))


def _plain(value):
    """JSON-safe copy: numpy scalars to Python, NaN and Inf to null (the evaluation report's rule)."""
    from zippypoint.eval.report import _plain as plain

    return plain(value)


def write_json(results: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(_plain(results), indent=1, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------------------------- accuracy


def read_accuracy(path: str | Path) -> dict[str, dict[str, float]]:
    """``{method: {resolution: correctness at 3 px}}`` from an evaluation ``results.json``: the mean over
    RANSAC orders (``correctness_3_orders``) where the evaluation has it, else the protocol's single run."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict):
        raise ValueError(f"{path}: not an evaluation results.json (expected a 'methods' object)")
    out: dict[str, dict[str, float]] = {}
    for name, entry in data["methods"].items():
        for label, res in (entry.get("resolutions") or {}).items():
            summary = res.get("summary") or {}
            value = summary.get("correctness_3_orders", summary.get("correctness_3"))
            if value is not None:
                out.setdefault(name, {})[label] = float(value)
    return out


def accuracy_label(evaluation: dict) -> str:
    """"C3/<orders>" when the evaluation averaged C3 over RANSAC orders, else "C3"."""
    orders = (evaluation.get("protocol") or {}).get("ransac_orders")
    return f"C3/{orders}" if orders else "C3"


def find_accuracy(accuracy: dict[str, dict[str, float]], patterns, label: str) -> tuple[str, float] | None:
    """First (evaluated name, C3) at ``label`` matching ``patterns`` in order (fnmatch); None if none."""
    for pattern in patterns:
        for name, per_res in accuracy.items():
            if label in per_res and fnmatch.fnmatchcase(name, pattern):
                return name, per_res[label]
    return None


def attach_accuracy(results: dict, path: str | Path) -> None:
    """Add ``accuracy = {"c3", "from"}`` to every timed method found in the evaluation at ``path``."""
    accuracy = read_accuracy(path)
    results["accuracy_source"] = str(path)
    data = json.loads(Path(path).read_text())
    dataset = data.get("dataset") or {}
    results["accuracy_metric"] = accuracy_label(data)
    results["accuracy_dataset"] = {"path": dataset.get("path"), "pairs": dataset.get("pairs")}
    for label, res in results["resolutions"].items():
        for name, entry in res["methods"].items():
            found = find_accuracy(accuracy, entry.get("accuracy_names") or [name], label)
            entry["accuracy"] = None if found is None else {"c3": found[1], "from": found[0]}


# ----------------------------------------------------------------------------------------------- markdown


def _ms(stats: dict | None) -> str:
    return "-" if not stats else f"{stats['median_ms']:.1f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _sorted_methods(res: dict) -> list[tuple[str, dict]]:
    return sorted(res["methods"].items(), key=lambda kv: -kv[1]["fps"])


def environment_lines(results: dict) -> list[str]:
    from zippypoint.bench.environment import isa_summary

    env = results["environment"]
    libs = env.get("libraries", {})
    versions = ", ".join(f"{k} {v}" for k, v in libs.items())
    load0, load1 = env.get("load_average_start"), env.get("load_average_end")
    fmt_load = lambda v: "n/a" if not v else " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
    settings = results["settings"]
    return [
        f"- Machine: {env['cpu']} ({env['machine']}), {env['usable_cores']} usable of {env['logical_cores']} "
        f"logical cores; {env['platform']}.",
        f"- ISA flags: {isa_summary(env.get('isa', {}))}.",
        f"- Threads: {env['threads']} for every method (torch, OpenCV, ONNX Runtime intra-op, faiss).",
        f"- Load average (1 / 5 / 15 min): {fmt_load(load0)} at the start, {fmt_load(load1)} at the end "
        f"(on {env['usable_cores']} cores; above that, other processes competed for the CPU).",
        *([f"- **Warning: the machine was oversubscribed** (load above {env['usable_cores']} cores). Multi-threaded "
           "PyTorch methods (XFeat, ALIKED, DISK, ours in PyTorch) then stall at thread barriers whenever a thread "
           "is descheduled, so their medians overstate their cost; rerun on an idle machine, or compare under load "
           "with `--threads 1`."] if env.get("oversubscribed") else []),
        f"- Libraries: {versions}.",
        f"- Photos: {', '.join(settings['images'])}, resized to each resolution before timing.",
        f"- Timing: {settings['warmup']} warm-up extractions, then {settings['runs']} timed runs per method in "
        f"blocks of {settings.get('block', 1)} (blocks of all methods alternate; one untimed call starts each "
        "block); median and p90 in ms; fps = 1000 / median end-to-end extraction time of one image; match = "
        "one pair of that method's features.",
    ]


def markdown_report(results: dict) -> str:
    """The whole report: environment, summary, one table per resolution, matching, profiles, skipped."""
    lines = ["# Speed benchmark", ""] + environment_lines(results)
    for preset, w in results.get("weights", {}).items():
        lines.append(f"- Weights of `{preset}`: {w['label']}.")
    lines += ["", "## Summary", ""] + summary_lines(results)
    for label, res in results["resolutions"].items():
        lines += ["", f"## {label} (top-{res['top_k']})", "", *resolution_table(res, results.get("accuracy_metric", "C3"))]
    if results.get("matching_throughput"):
        lines += ["", "## Matching throughput (n x n 256-bit descriptors, 64 ones each)", "",
                  *matching_table(results["matching_throughput"])]
    if results.get("profiles"):
        lines += ["", "## Where our network spends its time (per-layer profiles)", ""]
        for name, prof in results["profiles"].items():
            lines += profile_summary_lines(name, prof)
    for state in ("skipped", "failed"):
        if results.get(state):
            lines += ["", f"{state.capitalize()}:", ""] + [f"- `{n}`: {r}" for n, r in results[state].items()]
    return "\n".join(lines) + "\n"


def summary_lines(results: dict) -> list[str]:
    summary = results.get("summary", {})
    headline = summary.get("headline", "our default")
    lines = []
    for label, s in summary.get("resolutions", {}).items():
        if s.get("ours_fps") is None:
            lines.append(f"- {label}: `{headline}` did not run (see Skipped / Failed).")
            continue
        text = f"- {label}: ours (`{headline}`) **{s['ours_fps']:.1f} fps**"
        if s.get("xfeat_fps"):
            verdict = "faster than" if s["faster_than_xfeat"] else "slower than"
            text += (f"; XFeat {s['xfeat_fps']:.1f} fps in the same run: ours/XFeat = {s['ours_over_xfeat']:.2f} "
                     f"({verdict} XFeat)")
        if s.get("ours_over_paper") and summary.get("paper") != headline:
            text += (f"; the paper topology (`{summary.get('paper')}`) {s['paper_fps']:.1f} fps, ours/paper = "
                     f"{s['ours_over_paper']:.2f}")
        speedups = [f"{_ratio(s[k])} over {what}" for k, what in
                    (("speedup_over_fp_onnx", "ONNX Runtime fp32"), ("speedup_over_fp_pytorch", "PyTorch"))
                    if s.get(k)]
        if speedups:
            text += "; the paper topology's speed-up over its full-precision preset `zippypoint-fp`: " + ", ".join(speedups)
        if results["environment"].get("oversubscribed") and s.get("ours_min_ms") and s.get("xfeat_min_ms"):
            text += (f". Oversubscribed machine: the fastest runs were ours {s['ours_min_ms']:.1f} ms, XFeat "
                     f"{s['xfeat_min_ms']:.1f} ms (ours/XFeat {s['xfeat_min_ms'] / s['ours_min_ms']:.2f} by fps)")
        lines.append(text + ".")
    return lines or ["- no resolution was timed."]


def resolution_table(res: dict, accuracy_metric: str = "C3") -> list[str]:
    has_acc = any(e.get("accuracy") is not None for e in res["methods"].values())
    head = ("| method | runtime | weights | kpts | pre ms | network ms | post ms | end-to-end ms (median / p90 / min) "
            "| fps | match ms | matcher |" + (f" {accuracy_metric} |" if has_acc else ""))
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if has_acc else "")]
    for name, e in _sorted_methods(res):
        stages = e.get("stages", {})
        e2e = e["end_to_end"]
        row = [f"`{name}`", e["runtime"], e["weights"], str(e["keypoints"]),
               *(_ms(stages.get(s)) for s in STAGES),
               f"{e2e['median_ms']:.1f} / {e2e['p90_ms']:.1f} / {e2e['min_ms']:.1f}", f"{e['fps']:.1f}",
               _ms(e["matching"]), e["matcher"]]
        if has_acc:
            acc = e.get("accuracy")
            row.append("-" if acc is None else f"{acc['c3']:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Stage columns (medians) are shown for our runtimes (pre: image to network input; post: dense maps "
              "to keypoints and packed descriptors); peers are timed end to end. On a loaded machine the min column "
              "is the closest to the uncontended speed; fps uses the median."]
    return lines


def matching_table(rows: list[dict]) -> list[str]:
    lines = ["| n | matcher | median ms | p90 ms | matchings/s | speed-up vs OpenCV | matches | same pairs as OpenCV |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        same = "-" if r["same_pairs_as_opencv"] is None else ("yes" if r["same_pairs_as_opencv"] else "NO")
        lines.append(f"| {r['n']} | {r['matcher']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['matchings_per_s']:.1f} | {r['speedup_vs_opencv']:.2f}x | {r['matches']} | {same} |")
    return lines


def profile_summary_lines(name: str, prof: dict, top: int = 5) -> list[str]:
    if "failed" in prof:
        return [f"- `{name}`: profile failed: {prof['failed']}"]
    ops = ", ".join(f"{r['op']} {100 * r['share']:.0f}%" for r in prof["by_op"][:top])
    layers = ", ".join(f"{r['layer']} {100 * r['share']:.0f}%" for r in prof["by_layer"][:top])
    return [f"- `{name}` at {prof['size']} ({prof.get('runtime', 'ONNX Runtime')}): {prof['wall_ms']:.0f} ms per run "
            f"(profiler on). Op types: {ops}. "
            f"Layers: {layers}. Details: `profile_{safe_name(name)}.md`."]


# ----------------------------------------------------------------------------------------------- figures


def _is_ours(name: str) -> bool:
    return ":" in name


def _fps_log_axis(ax) -> None:
    """A log frame-rate axis labelled in plain numbers at 1, 2 and 5 per decade (no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_speed(results: dict, path: Path) -> None:
    """Per resolution: fps of every method (log scale), and our runtimes' stage breakdown in ms."""
    labels = [lab for lab, res in results["resolutions"].items() if res["methods"]]
    rows = max(len(labels), 1)
    n_methods = max((len(results["resolutions"][lab]["methods"]) for lab in labels), default=1)
    figure = agg_figure(13.0, rows * max(2.8, 0.32 * n_methods + 1.2), dpi=110)
    for i, label in enumerate(labels):
        res = results["resolutions"][label]
        methods = _sorted_methods(res)[::-1]
        ax = figure.add_subplot(rows, 2, 2 * i + 1)
        names = [n for n, _ in methods]
        values = [e["fps"] for _, e in methods]
        colours = ["#d95f02" if _is_ours(n) else "#7570b3" for n in names]
        ax.barh(range(len(names)), values, color=colours)
        for y, (v, (_, e)) in enumerate(zip(values, methods, strict=True)):
            ax.text(v, y, f" {v:.1f} fps ({e['end_to_end']['median_ms']:.0f} ms)", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        _fps_log_axis(ax)
        ax.set_xlim(min(values) / 1.5, max(values) * 8)
        ax.set(title=f"{label} (top-{res['top_k']}): frames per second (log)", xlabel="fps = 1000 / median ms")
        ax.grid(axis="x", alpha=0.3)
        ax = figure.add_subplot(rows, 2, 2 * i + 2)
        ours = [(n, e) for n, e in methods if e.get("stages")]
        left = np.zeros(len(ours))
        for stage in STAGES:
            widths = np.array([e["stages"].get(stage, {}).get("median_ms", 0.0) for _, e in ours])
            ax.barh(range(len(ours)), widths, left=left, color=STAGE_COLOURS[stage], label=stage)
            left += widths
        for y, (_, e) in enumerate(ours):
            ax.text(left[y], y, f" match {e['matching']['median_ms']:.1f} ms", va="center", fontsize=7)
        ax.set_yticks(range(len(ours)), [n for n, _ in ours], fontsize=8)
        ax.set(title=f"{label}: our stages (median ms, one image)", xlabel="ms")
        if ours:
            ax.set_xlim(0, left.max() * 1.35)
            ax.legend(fontsize=7, loc="best")
        ax.grid(axis="x", alpha=0.3)
    env = results["environment"]
    figure.suptitle(f"{env['cpu']}, {env['threads']} threads, load {env.get('load_average_start')} -> "
                    f"{env.get('load_average_end')}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def label_offsets(points: list[tuple[float, float]], near_decades: float = 0.9, near_y: float = 0.05,
                  step: int = 10) -> list[int]:
    """Vertical label offsets (points) so that labels of nearby points (fps on a log axis, accuracy) do not
    print over each other: each point takes the first offset 3, 3 - step, 3 + step, ... unused near it."""
    placed: list[tuple[float, float, int]] = []
    offsets = []
    for fps, y in points:
        x = math.log10(max(fps, 1e-9))
        used = {o for px, py, o in placed if abs(px - x) < near_decades and abs(py - y) < near_y}
        offset = next(3 + k * step for k in (0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5) if 3 + k * step not in used)
        placed.append((x, y, offset))
        offsets.append(offset)
    return offsets


def plot_speed_vs_accuracy(results: dict, path: Path) -> bool:
    """fps (log x) against correctness at 3 px, one panel per resolution with accuracy; False if none."""
    panels = [(lab, res) for lab, res in results["resolutions"].items()
              if any(e.get("accuracy") for e in res["methods"].values())]
    if not panels:
        return False
    figure = agg_figure(6.0 * len(panels), 4.8, dpi=110)
    for i, (label, res) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), i + 1)
        missing = [name for name, e in res["methods"].items() if e.get("accuracy") is None]
        points = [(name, e["fps"], e["accuracy"]["c3"]) for name, e in res["methods"].items() if e.get("accuracy")]
        for (name, fps, c3), offset in zip(points, label_offsets([(fps, c3) for _, fps, c3 in points]), strict=True):
            ax.scatter(fps, c3, color="#d95f02" if _is_ours(name) else "#7570b3", zorder=3)
            ax.annotate(name, (fps, c3), textcoords="offset points", xytext=(4, offset), fontsize=7)
        _fps_log_axis(ax)
        rates = [e["fps"] for e in res["methods"].values() if e.get("accuracy")]
        ax.set_xlim(min(rates) / 1.6, max(rates) * 2.5)
        ax.set(title=f"{label}: speed against accuracy", xlabel="frames per second (log)",
               ylabel=f"homography correctness at 3 px ({results.get('accuracy_metric', 'C3')})", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        if missing:
            ax.text(0.01, 0.01, "no accuracy: " + ", ".join(missing), transform=ax.transAxes, fontsize=6,
                    va="bottom", wrap=True)
    pairs = (results.get("accuracy_dataset") or {}).get("pairs")
    figure.suptitle(f"{results.get('accuracy_metric', 'C3')} from {results.get('accuracy_source')}" + (f" ({pairs} pairs)" if pairs else "") +
                    "; fps from this benchmark", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    return True


def plot_profile(prof: dict, title: str, path: Path, top: int = 15) -> None:
    """Horizontal bars: ms per run by op type and by layer."""
    figure = agg_figure(12.0, 5.0, dpi=110)
    for j, (key, field) in enumerate((("by_op", "op"), ("by_layer", "layer"))):
        rows = prof[key][:top][::-1]
        ax = figure.add_subplot(1, 2, j + 1)
        ax.barh(range(len(rows)), [r["ms"] for r in rows], color="#3182bd")
        for y, r in enumerate(rows):
            ax.text(r["ms"], y, f" {100 * r['share']:.1f}%", va="center", fontsize=7)
        ax.set_yticks(range(len(rows)), [r[field] for r in rows], fontsize=8)
        ax.set(title=f"{title}: by {field}", xlabel="ms per run")
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(f"{prof['model']} at {prof['size']}, {prof['threads']} threads, "
                    f"{prof['total_ms']:.0f} ms of node time per run", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def write_outputs(results: dict, out: str | Path) -> list[Path]:
    """Write every output under ``out``; returns the written paths."""
    from zippypoint.bench.profile import profile_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "benchmark.json", out / "benchmark.md"]
    write_json(results, written[0])
    written[1].write_text(markdown_report(results))
    if any(res["methods"] for res in results["resolutions"].values()):
        plot_speed(results, out / "speed.png")
        written.append(out / "speed.png")
    if plot_speed_vs_accuracy(results, out / "speed_vs_accuracy.png"):
        written.append(out / "speed_vs_accuracy.png")
    for name, prof in (results.get("profiles") or {}).items():
        if "failed" in prof:
            continue
        md, png = out / f"profile_{safe_name(name)}.md", out / f"profile_{safe_name(name)}.png"
        md.write_text(profile_markdown(prof, name))
        plot_profile(prof, name, png)
        written += [md, png]
    return written
