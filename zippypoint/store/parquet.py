"""Features and matches as Parquet tables: one row per image, one row per image pair (pyarrow only, no torch).

Features table (``FEATURES_SCHEMA``), one row per image:
- ``name``         string: the image's name (relative path or URI as listed);
- ``width``, ``height`` int32: size of the decoded image in pixels;
- ``keypoints``    list<float32>: x0, y0, x1, y1, ... (read back as float32 [N, 2], pixel centre of the top-left
  pixel = (0, 0));
- ``scores``       list<float32>: [N], sorted descending;
- ``descriptors``  binary: N * 32 bytes, the packed 256-bit descriptors row after row (uint8 [N, 32]).

Matches table (``MATCHES_SCHEMA``), one row per pair: ``name0``, ``name1`` and ``matches`` list<int32>
i0, j0, i1, j1, ... (read back as int64 [M, 2]: keypoint i of name0 matches keypoint j of name1).

Errors table (``ERRORS_SCHEMA``): ``name``, ``error`` for every input that could not be processed.

Files are written atomically (a temporary file in the same folder, then a rename), so a reader or a resumed run
never sees half a file. Every reader takes one file or a sequence of files (the shards of a run).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from zippypoint.store.atomic import atomic_path

DESCRIPTOR_BYTES = 32


def _pa():
    import pyarrow as pa

    return pa


def features_schema():
    pa = _pa()
    return pa.schema([
        ("name", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
        ("keypoints", pa.list_(pa.float32())), ("scores", pa.list_(pa.float32())), ("descriptors", pa.binary()),
    ])


def matches_schema():
    pa = _pa()
    return pa.schema([("name0", pa.string()), ("name1", pa.string()), ("matches", pa.list_(pa.int32()))])


def errors_schema():
    pa = _pa()
    return pa.schema([("name", pa.string()), ("error", pa.string())])


def _check_features(name: str, feats: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kp = np.asarray(feats["keypoints"], np.float32).reshape(-1, 2)
    sc = np.asarray(feats["scores"], np.float32).reshape(-1)
    de = np.asarray(feats["descriptors"])
    if de.dtype != np.uint8:
        raise TypeError(f"{name}: descriptors must be uint8 packed bits, got {de.dtype}")
    de = de.reshape(-1, DESCRIPTOR_BYTES) if de.size else np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
    if not len(kp) == len(sc) == len(de):
        raise ValueError(f"{name}: {len(kp)} keypoints, {len(sc)} scores and {len(de)} descriptors differ")
    return kp, sc, de


def features_table(records: Iterable[tuple[str, tuple[int, int], dict]]):
    """[(name, (width, height), features dict)] -> a pyarrow Table with ``features_schema()``."""
    pa = _pa()
    names, widths, heights, kps, scores, descs = [], [], [], [], [], []
    for name, (width, height), feats in records:
        kp, sc, de = _check_features(name, feats)
        names.append(name)
        widths.append(int(width))
        heights.append(int(height))
        kps.append(kp.reshape(-1))
        scores.append(sc)
        descs.append(np.ascontiguousarray(de).tobytes())
    return pa.table({
        "name": pa.array(names, pa.string()),
        "width": pa.array(widths, pa.int32()), "height": pa.array(heights, pa.int32()),
        "keypoints": pa.array(kps, pa.list_(pa.float32())), "scores": pa.array(scores, pa.list_(pa.float32())),
        "descriptors": pa.array(descs, pa.binary()),
    }, schema=features_schema())


def matches_table(records: Iterable[tuple[str, str, np.ndarray]]):
    """[(name0, name1, int [M, 2] matches)] -> a pyarrow Table with ``matches_schema()``."""
    pa = _pa()
    n0, n1, ms = [], [], []
    for a, b, m in records:
        m = np.asarray(m)
        if m.size and (m.ndim != 2 or m.shape[1] != 2):
            raise ValueError(f"{a} / {b}: matches must have shape [M, 2], got {m.shape}")
        n0.append(a)
        n1.append(b)
        ms.append(m.reshape(-1).astype(np.int32))
    return pa.table({"name0": pa.array(n0, pa.string()), "name1": pa.array(n1, pa.string()),
                     "matches": pa.array(ms, pa.list_(pa.int32()))}, schema=matches_schema())


def errors_table(records: Iterable[tuple[str, str]]):
    """[(name, error message)] -> a pyarrow Table with ``errors_schema()``."""
    pa = _pa()
    records = list(records)
    return pa.table({"name": pa.array([r[0] for r in records], pa.string()),
                     "error": pa.array([r[1] for r in records], pa.string())}, schema=errors_schema())


def write_table_atomic(table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` through a temporary file and a rename (readers never see a partial file)."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        pq.write_table(table, partial, compression="zstd")
    return path


def write_features(path: str | Path, records: Iterable[tuple[str, tuple[int, int], dict]]) -> Path:
    """Write one features table (one row per image) atomically; see the module docstring for the columns."""
    return write_table_atomic(features_table(records), path)


def write_matches(path: str | Path, records: Iterable[tuple[str, str, np.ndarray]]) -> Path:
    """Write one matches table (one row per pair) atomically."""
    return write_table_atomic(matches_table(records), path)


def write_errors(path: str | Path, records: Iterable[tuple[str, str]]) -> Path:
    """Write one errors table (name, error) atomically."""
    return write_table_atomic(errors_table(records), path)


def _as_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _read(paths, schema, columns=None, names=None, name_column="name"):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = []
    for path in _as_paths(paths):
        if not path.is_file():
            raise FileNotFoundError(f"no such Parquet file: {path}")
        filters = None if names is None else pc.field(name_column).isin(list(names))
        tables.append(pq.read_table(path, columns=columns, filters=filters, schema=schema))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def read_features(paths: str | Path | Sequence[str | Path],
                  names: Iterable[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Features of every image in one or more tables (only ``names`` when given), by name.

    Each value: ``keypoints`` float32 [N, 2], ``scores`` float32 [N], ``descriptors`` uint8 [N, 32] and
    ``image_size`` int32 [2] (width, height).
    """
    table = _read(paths, features_schema(), names=None if names is None else set(names))
    out = {}
    for row in table.to_pylist():
        out[row["name"]] = {
            "keypoints": np.asarray(row["keypoints"], np.float32).reshape(-1, 2),
            "scores": np.asarray(row["scores"], np.float32),
            "descriptors": np.frombuffer(row["descriptors"], np.uint8).reshape(-1, DESCRIPTOR_BYTES).copy(),
            "image_size": np.array([row["width"], row["height"]], np.int32),
        }
    return out


def read_names(paths: str | Path | Sequence[str | Path]) -> list[str]:
    """The image names of one or more features tables, in file order."""
    return _read(paths, features_schema(), columns=["name"]).column("name").to_pylist()


def read_matches(paths: str | Path | Sequence[str | Path]) -> dict[tuple[str, str], np.ndarray]:
    """Matches of every pair in one or more tables: {(name0, name1): int64 [M, 2]}."""
    table = _read(paths, matches_schema())
    return {(r["name0"], r["name1"]): np.asarray(r["matches"], np.int64).reshape(-1, 2) for r in table.to_pylist()}


def read_errors(paths: str | Path | Sequence[str | Path]) -> list[tuple[str, str]]:
    """(name, error) rows of one or more errors tables."""
    return [(r["name"], r["error"]) for r in _read(paths, errors_schema()).to_pylist()]
