"""Feature extraction of a large image collection with Ray Data: deployed runtime, sharded, resumable.

``extract_collection(source, out_dir, ExtractionOptions(...))``:
1. lists the images of ``source`` (folder, glob or list file on any pyarrow/fsspec filesystem; see
   ``sources.py``), sorted by name, and cuts them into fixed shards (``shards.py``);
2. skips the shards whose output file exists (a re-run resumes) and hands the others to a pool of Ray actors
   (``map_batches`` with a callable class, one shard per call); each actor opens the exported model once
   (ONNX Runtime fp32 or int8; the model file travels to the workers as bytes, so workers need no shared disk
   and no torch);
3. each shard is written atomically: ``features-<k>.parquet`` (one row per image, ``zippypoint.store.parquet``)
   or ``features-<k>.h5`` (hloc's layout, ``zippypoint.store.hloc``), with ``errors-<k>.parquet`` beside it
   (images that failed to read or decode: recorded, never fatal);
4. finally ``errors.parquet`` gathers every failure and ``extract-summary.json`` the counts.
Features are those of ``zippypoint extract --runtime onnx-int8`` on the same images: the same extractor class
and options run inside the actors.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.distributed.shards import (
    check_options,
    check_or_write_plan,
    items_digest,
    remove_partials,
    shard_file,
    shard_ranges,
    write_h5_shard,
    write_json_atomic,
)
from zippypoint.io import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIZE
from zippypoint.model.registry import DEFAULT_PRESET

RUNTIMES = ("onnx", "onnx-int8", "openvino", "openvino-int8")  # deployed runtimes (OpenVINO where installed)
FORMATS = ("parquet", "h5")
SUFFIX = {"parquet": ".parquet", "h5": ".h5"}


@dataclass(frozen=True)
class ExtractionOptions:
    model: str = DEFAULT_PRESET  # preset (its cached export is used) or an exported model file (.onnx / .xml)
    runtime: str = "onnx-int8"  # onnx (fp32), onnx-int8 (ONNX Runtime) or openvino, run inside the actors
    weights: str | None = None  # safetensors to export instead of the preset's shipped weights
    max_keypoints: int | None = 1000  # keep the N best keypoints per image
    score_threshold: float = 1e-4  # minimum keypoint score
    nms_radius: int = 0  # NMS radius in 8x8 cells (0 = off)
    resize: tuple[int, int] | None = None  # (W, H) the network sees; None = native size
    max_size: int | None = DEFAULT_MAX_SIZE  # without resize: longest side the network sees (0/None = native)
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images (from the file header, before decoding)
    shard_size: int = 256  # images per shard (and per actor call)
    format: str = "parquet"  # parquet (one row per image) or h5 (hloc layout), one file per shard
    workers: int = 2  # actors (each loads the model once)
    threads_per_worker: int = 1  # ONNX Runtime threads (and Ray CPUs) per actor

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        check_options(self, FORMATS, ("shard_size", "workers", "threads_per_worker"))

    def extractor_config(self) -> dict:
        return {"max_keypoints": self.max_keypoints, "score_threshold": self.score_threshold,
                "nms_radius": self.nms_radius, "resize": self.resize, "max_size": self.max_size,
                "max_pixels": self.max_pixels}


def model_payload(options: ExtractionOptions) -> tuple[Path, dict[str, bytes]]:
    """The exported model the actors run (``options.model`` itself, or the preset's cached export) and its
    files as {file name: bytes}: they travel to the workers with the job, so workers need no shared disk."""
    from zippypoint.resolve import available_runtimes, model_file

    if options.runtime not in available_runtimes():
        raise ValueError(f"runtime {options.runtime!r} is not available here; available: {available_runtimes()}")
    path = model_file(options.model, options.runtime, options.weights)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])  # OpenVINO IR: xml + bin
    return path, {p.name: p.read_bytes() for p in files}


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    import cv2

    if not data:
        raise ValueError(f"{name}: empty file (0 bytes)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{name}: not a decodable image (unknown format or corrupted file)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ValueError(f"{name}: {image.shape[1]}x{image.shape[0]} exceeds the limit of {max_pixels} pixels")
    return image


class ShardExtractor:
    """A Ray Data actor: opens the model once, then extracts and writes whole shards (one per row of a batch)."""

    def __init__(self, model_files: dict, model_name: str, runtime: str, config: dict, threads: int,
                 out_dir: str, fmt: str, filesystem=None) -> None:
        import tempfile

        from zippypoint.extractor import ExtractorConfig
        from zippypoint.resolve import build_extractor

        with tempfile.TemporaryDirectory(prefix="zippypoint-worker-") as folder:
            for file_name, data in model_files.items():
                (Path(folder) / file_name).write_bytes(data)
            # loaded now, once per actor; the runtime holds the model in memory afterwards
            self.extractor = build_extractor(Path(folder) / model_name, runtime, config=ExtractorConfig(**config),
                                             threads=threads)
        self.out_dir = Path(out_dir)
        self.fmt = fmt
        self.filesystem = filesystem

    def read(self, path: str) -> np.ndarray:
        from zippypoint.distributed.sources import read_image_bytes, resolve_filesystem

        max_pixels = self.extractor.config.max_pixels
        if self.filesystem is None and "://" not in path:
            from zippypoint.io import read_image

            return read_image(path, max_pixels=max_pixels)
        fs, fs_path = resolve_filesystem(path, self.filesystem)
        return _decode(read_image_bytes(fs, fs_path), path, max_pixels)

    def extract_one(self, name: str, path: str):
        image = self.read(path)
        return (image.shape[1], image.shape[0]), self.extractor.extract(image)

    def __call__(self, batch: dict) -> dict:
        out = {"shard": [], "images": [], "failed": [], "seconds": [], "cpu_seconds": []}
        for shard, names, paths in zip(batch["shard"], batch["names"], batch["paths"], strict=True):
            start, cpu_start = time.perf_counter(), time.process_time()
            records, errors = [], []
            for name, path in zip(names, paths, strict=True):
                try:
                    size, feats = self.extract_one(str(name), str(path))
                except (ValueError, TypeError, OSError) as exc:
                    errors.append((str(name), f"{type(exc).__name__}: {exc}"))
                    continue
                records.append((str(name), size, feats))
            write_shard(self.out_dir, int(shard), self.fmt, records, errors)
            out["shard"].append(int(shard))
            out["images"].append(len(records))
            out["failed"].append(len(errors))
            out["seconds"].append(time.perf_counter() - start)
            out["cpu_seconds"].append(time.process_time() - cpu_start)  # this worker's CPU time on the shard
        return {k: np.asarray(v) for k, v in out.items()}


def write_shard(out_dir: Path, shard: int, fmt: str, records: list, errors: list) -> None:
    """Errors first, then the features file (its existence marks the shard finished); both atomic."""
    from zippypoint.store.parquet import write_errors, write_features

    write_errors(shard_file(out_dir, "errors", shard, ".parquet"), errors)
    target = shard_file(out_dir, "features", shard, SUFFIX[fmt])
    if fmt == "parquet":
        write_features(target, records)
        return
    from zippypoint.store.hloc import write_features as write_h5

    write_h5_shard(target, lambda path, name, size, feats: write_h5(path, name, feats, size), records)


@dataclass(frozen=True)
class ExtractionResult:
    out_dir: Path
    images: int  # images listed
    extracted: int  # images with features written in this run
    failed: int  # images that failed in this run
    shards: int  # shards in the plan
    skipped_shards: int  # shards already finished before this run
    seconds: float  # wall time of the Ray part
    worker_seconds: float  # wall time the workers spent on shards in this run, summed over workers
    worker_cpu_seconds: float  # CPU time of the worker processes on those shards
    errors: list  # [(name, error)] over all shards

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["errors"] = [list(e) for e in self.errors]
        return d


def extract_collection(source: str, out_dir: str | Path, options: ExtractionOptions = ExtractionOptions(), *,
                       filesystem=None, address: str | None = None, runtime_env: dict | None = None,
                       progress: bool = True, worker_class: type = ShardExtractor) -> ExtractionResult:
    """Extract features of every image of ``source`` into ``out_dir`` shards with Ray (see module docstring).

    ``address``: an existing Ray cluster (``"auto"``, ``"ray://host:10001"``); None = the running Ray instance
    of this process, or a new local one. ``runtime_env``: Ray's runtime environment when this call connects
    (e.g. ``{"pip": ["zippypoint[distributed]"]}``). ``worker_class``: the actor class (a ShardExtractor
    subclass).
    """
    from zippypoint.distributed.sources import list_images

    out_dir = Path(out_dir)
    entries = list_images(source, filesystem)
    names = [e.name for e in entries]
    model_path, model_files = model_payload(options)
    from zippypoint.model.weights import sha256_file

    plan = {"source": source, "images": len(names), "names_sha256": items_digest(names),
            "model_sha256": sha256_file(model_path), "options": dataclasses.asdict(options)}
    plan["options"].pop("workers")
    plan["options"].pop("threads_per_worker")  # not part of what is computed: a re-run may use other workers
    out_dir.mkdir(parents=True, exist_ok=True)
    check_or_write_plan(out_dir, plan, "extract")
    remove_partials(out_dir, ("features", "errors"))  # left by a worker killed while writing

    ranges = shard_ranges(len(names), options.shard_size)
    suffix = SUFFIX[options.format]
    pending = [k for k in range(len(ranges)) if not shard_file(out_dir, "features", k, suffix).is_file()]
    rows = [{"shard": k, "names": names[ranges[k][0]:ranges[k][1]],
             "paths": [e.path for e in entries[ranges[k][0]:ranges[k][1]]]} for k in pending]
    extracted = failed = 0
    worker_seconds = worker_cpu_seconds = 0.0
    start = time.perf_counter()
    if rows:
        summaries = _run_actors(rows, worker_class, dict(
            model_files=model_files, model_name=model_path.name, runtime=options.runtime,
            config=options.extractor_config(), threads=options.threads_per_worker,
            out_dir=str(out_dir.resolve()), fmt=options.format, filesystem=filesystem),
            options.workers, options.threads_per_worker, address, runtime_env, progress,
            total=sum(len(r["names"]) for r in rows), unit="img", desc="extract")
        extracted = sum(int(s["images"]) for s in summaries)
        failed = sum(int(s["failed"]) for s in summaries)
        worker_seconds = sum(float(s["seconds"]) for s in summaries)
        worker_cpu_seconds = sum(float(s["cpu_seconds"]) for s in summaries)
    seconds = time.perf_counter() - start
    errors = collect_errors(out_dir, len(ranges))
    result = ExtractionResult(out_dir, len(names), extracted, failed, len(ranges), len(ranges) - len(pending),
                              seconds, worker_seconds, worker_cpu_seconds, errors)
    write_json_atomic(out_dir / "extract-summary.json", result.to_dict())
    return result


def collect_errors(out_dir: Path, shards: int) -> list[tuple[str, str]]:
    """Gather the per-shard error tables into ``errors.parquet``; returns its rows."""
    from zippypoint.store.parquet import read_errors, write_errors

    paths = [shard_file(out_dir, "errors", k, ".parquet") for k in range(shards)]
    errors = read_errors([p for p in paths if p.is_file()])
    write_errors(out_dir / "errors.parquet", errors)
    return errors


def feature_files(out_dir: str | Path) -> list[Path]:
    """The finished feature shards of a run folder, in shard order."""
    out_dir = Path(out_dir)
    return sorted(p for p in out_dir.iterdir() if p.name.startswith("features-") and p.suffix in (".parquet", ".h5"))


def _run_actors(rows: list[dict], worker_class: type, constructor_kwargs: dict, workers: int, cpus: int,
                address: str | None, runtime_env: dict | None, progress: bool, total: int, unit: str,
                desc: str) -> list[dict]:
    """Hand ``rows`` (one work item each) to ``workers`` actors of ``worker_class``; the per-row summaries."""
    import ray

    from zippypoint.distributed.cluster import ensure_ray

    ensure_ray(address, runtime_env=runtime_env)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bar counts images, Ray's would count shards
    ctx.execution_options.preserve_order = True
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    mapped = dataset.map_batches(worker_class, fn_constructor_kwargs=constructor_kwargs, batch_size=1,
                                 compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus,
                                 zero_copy_batch=True)
    bar = _progress(total, unit, desc, progress)
    summaries = []
    for row in mapped.iter_rows():
        summaries.append(row)
        if bar is not None:
            bar.update(int(row.get("images", row.get("pairs", 0))) + int(row.get("failed", 0)))
    if bar is not None:
        bar.close()
    return summaries


def _progress(total: int, unit: str, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, desc=desc)
