"""Where the images of a distributed run come from: a folder, a glob or a list file, on any filesystem.

A source is a string: a local path or a URI that pyarrow understands (``s3://bucket/photos``, ``gs://...``,
``hdfs://...``), or a path on a filesystem object passed alongside it (a ``pyarrow.fs.FileSystem`` or an fsspec
filesystem, wrapped for pyarrow). It names
- a folder: every image below it (recursive), named by its path relative to the folder;
- a glob (``photos/**/*.jpg``, ``photos/*.png``): matching files below the part before the first wildcard, named
  relative to that part;
- a list file (``.txt`` / ``.lst``): one image per line (blank lines and ``#`` comments skipped), a path relative
  to the list's folder, an absolute path or a URI; the name is the line as written.
Names are sorted, so the same source always gives the same order (and the same shards).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from zippypoint.io import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst")
_WILDCARDS = "*?["


@dataclass(frozen=True)
class ImageEntry:
    name: str  # the name features are stored under
    path: str  # the path on ``filesystem`` (a local path for the local filesystem)


def as_arrow_filesystem(filesystem):
    """A pyarrow filesystem from None (local), a pyarrow FileSystem or an fsspec filesystem."""
    import pyarrow.fs as pafs

    if filesystem is None:
        return pafs.LocalFileSystem()
    if isinstance(filesystem, pafs.FileSystem):
        return filesystem
    if hasattr(filesystem, "protocol") and hasattr(filesystem, "open"):  # an fsspec filesystem
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
    raise TypeError(f"filesystem: expected None, a pyarrow FileSystem or an fsspec filesystem, "
                    f"got {type(filesystem).__name__}")


def resolve_filesystem(source: str, filesystem=None):
    """(pyarrow filesystem, path on it) for a source string."""
    import pyarrow.fs as pafs

    if filesystem is not None:
        return as_arrow_filesystem(filesystem), source
    if "://" in source:
        return pafs.FileSystem.from_uri(source)
    from pathlib import Path

    return pafs.LocalFileSystem(), Path(source).expanduser().resolve().as_posix()


def is_local(filesystem) -> bool:
    import pyarrow.fs as pafs

    return isinstance(filesystem, pafs.LocalFileSystem)


def _is_image(path: str) -> bool:
    dot = path.rfind(".")
    return dot >= 0 and path[dot:].lower() in IMAGE_SUFFIXES


def _files_below(fs, root: str) -> list[str]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return [info.path for info in infos if info.type == pafs.FileType.File]


def _relative(path: str, root: str) -> str:
    root = root.rstrip("/")
    return path[len(root) + 1:] if path.startswith(root + "/") else path


def _read_list(fs, path: str, source: str) -> list[ImageEntry]:
    import posixpath

    with fs.open_input_stream(path) as f:
        lines = f.read().decode("utf-8").splitlines()
    base = posixpath.dirname(path)
    entries, seen = [], set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line in seen:
            raise ValueError(f"{source}, line {number}: {line!r} is listed twice")
        seen.add(line)
        if "://" in line:
            entries.append(ImageEntry(line, line))
        else:
            entries.append(ImageEntry(line, line if posixpath.isabs(line) else posixpath.join(base, line)))
    return entries


def list_images(source: str, filesystem=None) -> list[ImageEntry]:
    """Images named by ``source`` (folder, glob or list file), sorted by name; see the module docstring."""
    import pyarrow.fs as pafs

    if not isinstance(source, str) or not source:
        raise TypeError(f"source: expected a non-empty string, got {source!r}")
    fs, path = resolve_filesystem(source, filesystem)
    if any(c in path for c in _WILDCARDS):
        cut = min(path.find(c) for c in _WILDCARDS if c in path)
        root = path[:cut].rsplit("/", 1)[0] if "/" in path[:cut] else "."
        pattern = _relative(path, root)
        files = [p for p in _files_below(fs, root) if fnmatch.fnmatchcase(_relative(p, root), pattern)
                 or ("**/" in pattern and fnmatch.fnmatchcase(_relative(p, root), pattern.replace("**/", "")))]
        entries = [ImageEntry(_relative(p, root), p) for p in files if _is_image(p)]
    else:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no such file or folder: {source}")
        if info.type == pafs.FileType.Directory and is_local(fs):
            from zippypoint.io import list_images as list_local

            entries = [ImageEntry(p.relative_to(path).as_posix(), p.as_posix()) for p in list_local(path)]
        elif info.type == pafs.FileType.Directory:
            entries = [ImageEntry(_relative(p, path), p) for p in _files_below(fs, path) if _is_image(p)]
        elif path.lower().endswith(LIST_SUFFIXES):
            entries = _read_list(fs, path, source)
        elif _is_image(path):
            entries = [ImageEntry(path.rsplit("/", 1)[-1], path)]
        else:
            raise ValueError(f"{source}: expected a folder, a glob, an image or a list file ({', '.join(LIST_SUFFIXES)})")
    return sorted(entries, key=lambda e: e.name)


def read_image_bytes(fs, path: str) -> bytes:
    """The raw bytes of one file on a pyarrow filesystem."""
    with fs.open_input_stream(path) as f:
        return f.read()
