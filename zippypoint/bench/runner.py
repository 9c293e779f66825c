"""The speed benchmark: every method on the same photos at each resolution, interleaved, then matching
throughput and the per-layer profile. ``run_benchmark(config) -> results`` (a JSON-able dict, structure in
``zippypoint.bench.report``); ``zippypoint benchmark`` writes it with the Markdown table and charts.

Timing protocol: each method is built and warmed up (``warmup`` extractions cycling over the photos, so
every photo's features exist). The ``runs`` timed extractions (photo ``run % photos``), then as many
matchings of the first two photos' features, run through ``zippypoint.timing.interleaved_times``: blocks of
``block`` consecutive runs per method; blocks of all methods alternate, in an order that rotates per block, so
that slow changes of the background load spread over all methods alike. Each extraction block starts with one
untimed extraction: runtimes keep their thread pools spinning for a while after a call (ONNX Runtime, OpenMP
in torch), which would otherwise slow the next method's first call. Within a block a method runs as it would
alone in a process.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from zippypoint.timing import fps, interleaved_times, summarize_ms

DEFAULT_RESOLUTIONS = ("320x240", "640x480")
PROFILE_RUNTIMES = {"onnx-int8", "onnx-fp32", "openvino", "openvino-int8"}
SCHEMA = "zippypoint-benchmark/1"


@dataclass(frozen=True)
class BenchmarkConfig:
    resolutions: tuple[str, ...] = DEFAULT_RESOLUTIONS  # "WxH" or "WxH:TOPK"; 320x240 keeps 300, 640x480 1000
    runs: int = 20  # timed rounds per resolution (median and p90 over them)
    warmup: int = 3  # untimed extractions per method before timing (at least one per photo)
    block: int = 5  # consecutive timed runs of one method before the next method's block
    threads: int | None = None  # threads for torch, OpenCV, faiss and ONNX Runtime; None = usable cores
    methods: tuple[str, ...] | None = None  # None = zippypoint.bench.methods.DEFAULT_METHODS
    images: tuple[str, ...] = ()  # photos to time on (two or more); () = images 1 and 2 of the first sequence
    data: str | None = None  # HPatches-layout folder used when images is empty (the CLI passes its --data)
    work: str = "runs/benchmark-work"  # export cache
    weights: tuple[tuple[str, str], ...] = ()  # (preset, safetensors file) overrides
    random_weights: bool = False  # time our presets with random weights even when trained ones exist
    calibration_dir: str | None = None  # int8 calibration photos (default: the exporter's)
    calibration_count: int = 64  # photos used for int8 calibration
    matching_sizes: tuple[int, ...] = (1024, 2048, 4096)  # n for the n x n matching throughput; () = skip
    profile: bool = True  # per-layer profiles of our ONNX Runtime and OpenVINO models
    profile_runs: int = 10  # profiled runs (after 2 warm-up runs)
    accuracy: str | None = None  # evaluation results.json for speed vs accuracy
    extra: dict = field(default_factory=dict)  # free-form notes recorded in the results

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.block < 1 or self.profile_runs < 1:
            raise ValueError(f"need runs >= 1, warmup >= 0, block >= 1, profile_runs >= 1; got {self.runs}, "
                             f"{self.warmup}, {self.block}, {self.profile_runs}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not self.resolutions:
            raise ValueError("need at least one resolution")
        for text in self.resolutions:
            parse_resolution(text)
        if any(n < 2 for n in self.matching_sizes):
            raise ValueError(f"matching sizes must be >= 2, got {self.matching_sizes}")
        if self.images and len(self.images) < 2:
            raise ValueError(f"give at least two photos (the matching stage matches the first two), got {self.images}")


def parse_resolution(text: str):
    """``"320x240"`` / ``"640x480"`` (top-k 300 / 1000, as the evaluation), ``"WxH:K"``, or ``"WxH"`` with
    top-k scaled from 1000 at 640x480 by the pixel count."""
    from zippypoint.eval.runner import STANDARD_RESOLUTIONS, Resolution
    from zippypoint.eval.runner import parse_resolution as parse_eval

    text = text.strip()
    if text in STANDARD_RESOLUTIONS or ":" in text:
        return parse_eval(text)
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise ValueError(f"resolution must look like 640x480 or 640x480:1000, got {text!r}")
    w, h = int(match.group(1)), int(match.group(2))
    if w < 24 or h < 24:
        raise ValueError(f"resolution must be at least 24x24, got {text}")
    return Resolution(w, h, max(1, round(1000 * w * h / (640 * 480))))


def load_photos(config: BenchmarkConfig) -> tuple[list[np.ndarray], list[str]]:
    """uint8 BGR photos and their names: ``config.images``, else images 1 and 2 of the first sequence under
    ``config.data`` (when given), else two photos bundled with scikit-image."""
    from zippypoint.eval.hpatches import find_sequences, read_image_bgr

    if config.images:
        return [read_image_bgr(p) for p in config.images], [str(p) for p in config.images]
    try:
        if config.data is None:
            raise FileNotFoundError("no data folder given")
        sequence = find_sequences(config.data)[0]
        paths = [sequence.images[k] for k in sorted(sequence.images)[:2]]
        return [read_image_bgr(p) for p in paths], [str(p) for p in paths]
    except (FileNotFoundError, ValueError, IndexError):
        import skimage.data

        names = ["astronaut", "coffee"]
        return ([np.ascontiguousarray(getattr(skimage.data, n)()[:, :, ::-1]) for n in names],
                [f"skimage.data.{n}" for n in names])


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def run_benchmark(config: BenchmarkConfig, *, progress: bool = True, log: Callable[[str], None] = _say) -> dict:
    """Run the whole benchmark (see the module docstring); returns the results dict."""
    from zippypoint.bench import environment
    from zippypoint.bench.methods import DEFAULT_METHODS, MethodFactory, check_method_name
    from zippypoint.bench.models import ExportCache
    from zippypoint.resolve import resolve_model

    names = list(config.methods or DEFAULT_METHODS)
    for name in names:
        check_method_name(name)
    resolutions = [parse_resolution(r) for r in config.resolutions]
    threads = config.threads or environment.usable_cores()
    needs_torch = any(n not in ("orb", "sift") for n in names)  # kornia peers, our networks and their exports
    environment.set_threads(threads, torch=needs_torch)
    env = environment.capture_environment(threads)
    photos, photo_names = load_photos(config)

    weights = {}
    for preset, file in config.weights:
        weights[preset] = resolve_model(preset, file)
    if config.random_weights:
        for preset in {n.partition(":")[0] for n in names if ":" in n} - set(weights):
            weights[preset] = resolve_model(preset, random_weights=True)
    exports = ExportCache(config.work, calibration_dir=config.calibration_dir,
                          calibration_count=config.calibration_count)
    factory = MethodFactory(exports, weights, threads)

    results: dict = {
        "schema": SCHEMA,
        "settings": {
            "resolutions": [{"size": r.label, "top_k": r.top_k} for r in resolutions],
            "runs": config.runs, "warmup": config.warmup, "block": config.block, "threads": threads,
            "methods": names,
            "images": photo_names, "work": str(config.work), "matching_sizes": list(config.matching_sizes),
            "timing": "median and p90 over the timed runs (blocks of consecutive runs per method, blocks of all "
                      "methods alternating, one untimed call per block); fps = 1000 / median end-to-end extraction "
                      "ms; photos pre-resized (cv2.resize) to the resolution outside the timing",
            **config.extra,
        },
        "environment": env,
        "weights": {},
        "skipped": {},
        "failed": {},
        "resolutions": {},
    }

    built: dict[str, dict] = {}
    for res in resolutions:
        built[res.label] = {}
        for name in names:
            if name in results["skipped"]:
                continue
            log(f"preparing {name} at {res.label} (top-{res.top_k})")
            try:
                built[res.label][name] = factory.build(name, res.top_k)
            except Exception as exc:  # unavailable here (MethodUnavailable) or broken: record, go on
                results["skipped"][name] = f"{type(exc).__name__}: {exc}"
                log(f"skipping {name}: {exc}")
    for preset, choice in factory.weights.items():
        results["weights"][preset] = {"label": choice.label, "source": choice.source, "path": choice.path,
                                      "sha256": choice.sha256}

    steps = sum(len(m) for m in built.values()) * (config.warmup + config.runs) + len(config.matching_sizes)
    from tqdm import tqdm

    with tqdm(total=steps, desc="benchmark", unit="call", file=sys.stderr, disable=not progress) as bar:
        for res in resolutions:
            images = [_resize(p, res.size) for p in photos]
            results["resolutions"][res.label] = _time_resolution(built[res.label], images, res, config, results,
                                                                 bar)
        if config.matching_sizes:
            from zippypoint.bench.matching import matching_throughput

            bar.set_postfix_str("matching throughput")
            results["matching_throughput"] = matching_throughput(config.matching_sizes, runs=config.runs,
                                                                 progress=bar.update)
    if config.profile:
        results["profiles"] = _profiles(built, exports, factory, resolutions, config, threads, log)
    results["environment"]["load_average_end"] = environment.load_average()
    results["environment"]["oversubscribed"] = environment.oversubscribed(
        results["environment"]["load_average_start"], results["environment"]["load_average_end"],
        results["environment"]["usable_cores"])
    results["environment"]["thread_settings"] = environment.thread_settings()
    results["summary"] = summarize(results)
    if config.accuracy:
        from zippypoint.bench.report import attach_accuracy

        attach_accuracy(results, config.accuracy)
    return results


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from zippypoint.eval.hpatches import resize_image

    return resize_image(image, size)


def _time_resolution(methods: dict, images: list[np.ndarray], res, config: BenchmarkConfig, results: dict,
                     bar) -> dict:
    """Warm up every method, then time interleaved rounds; returns {"top_k", "methods": {...}}."""
    features: dict[str, list] = {}
    for name, method in list(methods.items()):
        bar.set_postfix_str(f"{res.label} warm-up {name}")
        try:
            feats = [None] * len(images)
            for i in range(max(config.warmup, len(images))):
                feats[i % len(images)] = method.run(images[i % len(images)])[0]
                if i < config.warmup:
                    bar.update()
            method.match(feats[0], feats[1])
            features[name] = feats
        except Exception as exc:
            results["failed"][f"{name} @ {res.label}"] = f"{type(exc).__name__}: {exc}"
            del methods[name]
    stages: dict[str, dict[str, list[float]]] = {name: {} for name in methods}
    counts: dict[str, list[int]] = {name: [] for name in methods}

    def extraction(name: str, method):
        def call(r: int) -> None:
            if r < 0:  # the untimed call that settles the previous method's thread pools
                method.run(images[0])
                return
            feats, laps = method.run(images[r % len(images)])
            counts[name].append(len(feats["scores"]))
            for stage, ms in laps.items():
                stages[name].setdefault(stage, []).append(ms)
            bar.update()
        return call

    bar.set_postfix_str(f"{res.label} timing")
    total = interleaved_times({name: extraction(name, m) for name, m in methods.items()}, config.runs,
                              block=config.block, rotate=True, settle=True)
    bar.set_postfix_str(f"{res.label} matching")
    match_ms = interleaved_times(
        {name: (lambda r, m=m, f=features[name]: m.match(f[0], f[1])) for name, m in methods.items()},
        config.runs, warmup=1, block=config.block, rotate=True)
    out = {}
    for name, method in methods.items():
        e2e = summarize_ms(total[name])
        f1, f2 = features[name][0], features[name][1]
        out[name] = {
            "runtime": method.runtime,
            "weights": method.weights,
            "matcher": method.matcher,
            "accuracy_names": list(method.accuracy_names),
            "keypoints": int(np.median(counts[name])),
            "stages": {stage: summarize_ms(v) for stage, v in stages[name].items()},
            "end_to_end": e2e,
            "fps": fps(e2e["median_ms"]),
            "matching": summarize_ms(match_ms[name]),
            "matching_keypoints": [len(f1["scores"]), len(f2["scores"])],
            "matches": int(len(method.match(f1, f2))),
        }
    return {"top_k": res.top_k, "size": list(res.size), "methods": out}


def _profiles(built: dict, exports, factory, resolutions, config: BenchmarkConfig, threads: int,
              log: Callable[[str], None]) -> dict:
    """Per-layer profiles of our ONNX Runtime and OpenVINO methods at 640x480 (or the largest resolution
    benchmarked)."""
    from zippypoint.bench.methods import _EXPORT_FORMAT
    from zippypoint.bench.profile import profile_onnx, profile_openvino

    target = max(resolutions, key=lambda r: (r.label == "640x480", r.width * r.height))
    names = sorted({n for per_res in built.values() for n in per_res if n.partition(":")[2] in PROFILE_RUNTIMES})
    profiles = {}
    for name in names:
        preset, _, runtime = name.partition(":")
        log(f"profiling {name} at {target.label}")
        try:
            path = exports.path(factory.weights_for(preset), _EXPORT_FORMAT[runtime])
            profiler = profile_openvino if runtime.startswith("openvino") else profile_onnx
            profiles[name] = profiler(path, target.size, runs=config.profile_runs, threads=threads)
            profiles[name]["by_node"] = profiles[name]["by_node"][:50]  # the rest is noise in the JSON
        except Exception as exc:  # a profile is a diagnostic: never lose the timings for it
            profiles[name] = {"failed": f"{type(exc).__name__}: {exc}"}
    return profiles


def summarize(results: dict) -> dict:
    """Per resolution: our headline runtime's fps (the default preset), XFeat's, their ratio, the paper topology's
    fps on its default runtime, and that runtime's speed-up over the paper topology in full precision (ONNX Runtime
    fp32 and PyTorch), where those methods ran."""
    from zippypoint.bench.methods import PAPER_PRESET, headline

    best, paper = headline(), headline(PAPER_PRESET)
    summary = {"headline": best, "paper": paper, "resolutions": {}}
    for label, res in results["resolutions"].items():
        fps_of = {name: m["fps"] for name, m in res["methods"].items()}
        ours, paper_fps = fps_of.get(best), fps_of.get(paper)
        entry = {"ours_fps": ours, "xfeat_fps": fps_of.get("xfeat"), "paper_fps": paper_fps,
                 "fp_onnx_fps": fps_of.get("zippypoint-fp:onnx-fp32"),
                 "fp_pytorch_fps": fps_of.get("zippypoint-fp:pytorch"), "orb_fps": fps_of.get("orb")}
        for key, num, ref in (("ours_over_xfeat", ours, "xfeat_fps"), ("ours_over_paper", ours, "paper_fps"),
                              ("speedup_over_fp_onnx", paper_fps, "fp_onnx_fps"),
                              ("speedup_over_fp_pytorch", paper_fps, "fp_pytorch_fps")):
            entry[key] = num / entry[ref] if num and entry[ref] else None
        entry["faster_than_xfeat"] = None if entry["ours_over_xfeat"] is None else entry["ours_over_xfeat"] > 1
        # the fastest runs: on a loaded machine the closest to what each method costs alone
        for key, name in (("ours_min_ms", best), ("xfeat_min_ms", "xfeat")):
            entry[key] = res["methods"][name]["end_to_end"]["min_ms"] if name in res["methods"] else None
        summary["resolutions"][label] = entry
    return summary
