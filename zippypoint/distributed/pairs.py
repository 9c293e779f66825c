"""Which image pairs to match: exhaustive (optionally within a sliding window), sequential, or a pairs file.

Every function takes image names (sorted, as a run lists them) and returns ``[(name0, name1)]`` without
duplicates, in a fixed order. A pairs file has one pair per line, two names separated by whitespace (hloc's
``pairs.txt``); ``#`` comments and blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def exhaustive_pairs(names: Sequence[str], window: int | None = None) -> list[tuple[str, str]]:
    """All pairs ``(names[i], names[j])``, ``i < j``; with ``window`` only those with ``j - i < window``."""
    if window is not None and window < 2:
        raise ValueError(f"window must be >= 2 (or None for all pairs), got {window}")
    n = len(names)
    reach = n if window is None else window
    return [(names[i], names[j]) for i in range(n) for j in range(i + 1, min(n, i + reach))]


def sequential_pairs(names: Sequence[str], overlap: int = 5, quadratic: bool = False) -> list[tuple[str, str]]:
    """Each image with its ``overlap`` successors; ``quadratic`` adds the successors at 2^k beyond them
    (loop-closure candidates along a sequence, as hloc's sequential pairs do)."""
    if overlap < 1:
        raise ValueError(f"overlap must be >= 1, got {overlap}")
    n = len(names)
    pairs = []
    for i in range(n):
        steps = list(range(1, overlap + 1))
        if quadratic:
            k = 1
            while overlap + 2 ** k < n:
                steps.append(overlap + 2 ** k)
                k += 1
        pairs.extend((names[i], names[i + s]) for s in steps if i + s < n)
    return pairs


def read_pairs(path: str | Path, names: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Pairs listed in a text file; with ``names``, a pair naming an unknown image is a ValueError."""
    known = None if names is None else set(names)
    pairs, seen = [], set()
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}, line {number}: expected two names, got {len(parts)}")
        pair = (parts[0], parts[1])
        if known is not None and not (pair[0] in known and pair[1] in known):
            missing = [p for p in pair if p not in known]
            raise ValueError(f"{path}, line {number}: no features for {', '.join(missing)}")
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs


def write_pairs(path: str | Path, pairs: Sequence[tuple[str, str]]) -> Path:
    path = Path(path)
    path.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    return path


def make_pairs(names: Sequence[str], mode: str, *, window: int | None = None, overlap: int = 5,
               quadratic: bool = False, pairs_file: str | Path | None = None) -> list[tuple[str, str]]:
    """``mode``: "exhaustive" (with ``window``), "sequential" (``overlap``, ``quadratic``) or "file"."""
    if mode == "exhaustive":
        return exhaustive_pairs(names, window)
    if mode == "sequential":
        return sequential_pairs(names, overlap, quadratic)
    if mode == "file":
        if pairs_file is None:
            raise ValueError("mode 'file' needs pairs_file")
        return read_pairs(pairs_file, names)
    raise ValueError(f"mode must be exhaustive, sequential or file, got {mode!r}")
