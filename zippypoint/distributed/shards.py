"""Fixed shards of a run, its plan file, and which shards are finished (what makes a run resumable).

Items (image names, or image pairs) are sorted and cut into consecutive shards of ``shard_size``; shard ``k``
holds items ``k * shard_size .. (k + 1) * shard_size - 1`` whatever the number of workers, so a re-run writes
the same files. A shard's output file exists only once complete (written to a temporary file, then renamed):
a re-run skips shards whose file exists. ``plan.json`` records what the run was asked to do; a re-run with a
different plan in the same folder is refused instead of mixing two runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from zippypoint.store.atomic import atomic_path

PLAN_FILE = "plan.json"


def shard_ranges(count: int, shard_size: int) -> list[tuple[int, int]]:
    """[(start, stop)] of consecutive shards covering ``count`` items."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [(s, min(s + shard_size, count)) for s in range(0, count, shard_size)]


def shard_file(out_dir: str | Path, kind: str, index: int, suffix: str) -> Path:
    """``out_dir/<kind>-<index:05d><suffix>``, e.g. ``features-00003.parquet``."""
    return Path(out_dir) / f"{kind}-{index:05d}{suffix}"


def items_digest(items: Sequence) -> str:
    """A short sha256 of the item list (names or pairs), to recognise the same run."""
    h = hashlib.sha256()
    for item in items:
        h.update((item if isinstance(item, str) else "\t".join(item)).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def write_json_atomic(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


def check_options(options, formats: Sequence[str], at_least_one: Sequence[str]) -> None:
    """ValueError unless ``options.format`` is one of ``formats`` and every field named in ``at_least_one`` is >= 1."""
    if options.format not in formats:
        raise ValueError(f"format must be one of {tuple(formats)}, got {options.format!r}")
    for field in at_least_one:
        if getattr(options, field) < 1:
            raise ValueError(f"{field} must be >= 1, got {getattr(options, field)}")


def write_h5_shard(target: Path, write_record, records: Sequence[tuple]) -> None:
    """The hloc h5 shard ``target``, written atomically by ``write_record(path, *record)`` for each record;
    a shard without records is an empty file (it still marks the shard finished)."""
    import h5py

    with atomic_path(target) as partial:
        h5py.File(partial, "w").close()
        for record in records:
            write_record(partial, *record)


def check_or_write_plan(out_dir: str | Path, plan: dict, kind: str) -> None:
    """Write ``<kind>-plan.json``, or check that an existing one equals ``plan`` (raises ValueError if not)."""
    path = Path(out_dir) / f"{kind}-{PLAN_FILE}"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(plan)):
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise ValueError(f"{out_dir} holds a different {kind} run (differs in {', '.join(diff)}); "
                             "use another output folder or delete it")
        return
    write_json_atomic(path, plan)


def remove_partials(out_dir: str | Path, kinds: Sequence[str]) -> int:
    """Delete temporary files that a killed writer left (``.<kind>-*.partial``); returns how many."""
    removed = 0
    for kind in kinds:
        for path in Path(out_dir).glob(f".{kind}-*.partial"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
