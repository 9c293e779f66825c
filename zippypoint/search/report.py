"""The search report: a Markdown table of every candidate and a latency-against-accuracy figure with its Pareto
front (accuracy = the short-training proxy where it ran; the MAC count otherwise, marked as such)."""

from __future__ import annotations

from pathlib import Path

from zippypoint.search.cluster import pareto_front

LATENCY_KEY = "openvino@640x480/cpu"


def _latency(lat: dict, key: str):
    """``key`` of a candidate's latencies; for a float candidate its fp32 runs (OpenVINO / ONNX Runtime fp32)."""
    if key in lat:
        return lat[key]
    return lat.get(key.replace("openvino", "openvino-fp32").replace("onnx-int8", "onnx"))


def _fmt(v, digits=1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def markdown_table(results: dict) -> str:
    cols = ["openvino@640x480/cpu", "openvino@320x240/cpu", "onnx-int8@640x480/cpu", "onnx-int8@320x240/cpu",
            "openvino@640x480", "onnx-int8@640x480"]
    head = ("| candidate | cluster | rep | GMAC 640x480 (binary / int8 / float) | params M | "
            + " | ".join(c.replace("/cpu", " cpu ms").replace("@", " ") + ("" if "cpu" in c else " wall ms")
                         for c in cols) + " | proxy MMA@3 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    order = sorted(results, key=lambda n: (not results[n].get("representative"), results[n]["features"]["gmac"]))
    for name in order:
        e = results[name]
        f, lat = e["features"], e.get("latency", {})
        fp = "fp32" if "fp" in name.split("-") else ""
        fp32_label = f"{f['gmac']:.1f} ({f['gmac_binary']:.1f} / {f['gmac_int8']:.1f} / {f['gmac_float']:.1f}) {fp}"
        proxy = e.get("proxy", {}).get("hp_mma_3")
        lines.append(f"| {name} | {e.get('cluster', '')} | {'yes' if e.get('representative') else ''} | "
                     f"{fp32_label.strip()} | {f['params'] / 1e6:.2f} | "
                     + " | ".join(_fmt(_latency(lat, c)) for c in cols) + f" | {_fmt(proxy, 3)} |")
    return "\n".join(lines)


def latency_accuracy_figure(results: dict, path: str | Path) -> Path:
    """Latency (OpenVINO CPU ms at 640x480) of the representatives against the proxy accuracy, Pareto front drawn;
    where no proxy ran, against GMAC (lower is better there, so the axis is reversed)."""
    from zippypoint.viz import agg_figure

    reps = [n for n, e in results.items() if _latency(e.get("latency", {}), LATENCY_KEY) is not None]
    with_proxy = [n for n in reps if "hp_mma_3" in results[n].get("proxy", {})]
    names = with_proxy if len(with_proxy) >= 2 else reps
    lat = [_latency(results[n]["latency"], LATENCY_KEY) for n in names]
    if names is with_proxy:
        acc, label = [results[n]["proxy"]["hp_mma_3"] for n in names], "proxy accuracy: MMA@3 on hpatches-dev"
    else:
        acc, label = [-results[n]["features"]["gmac"] for n in names], "-GMAC at 640x480 (no accuracy proxy ran)"
    fig = agg_figure(8, 5.5)
    ax = fig.subplots()
    ax.scatter(lat, acc, color="tab:blue")
    front = pareto_front(lat, acc)
    ax.plot([lat[i] for i in front], [acc[i] for i in front], color="tab:red", lw=1.5, label="Pareto front")
    for i, n in enumerate(names):
        ax.annotate(n, (lat[i], acc[i]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("OpenVINO network CPU ms at 640x480 (1 thread; 1-bit + int8 kernels, fp32 for float candidates)")
    ax.set_ylabel(label)
    ax.set_title("Lean topology search: cluster representatives")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
