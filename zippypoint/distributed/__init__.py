"""Feature extraction and matching of large image collections with Ray (optional extra ``distributed``).

- :func:`zippypoint.distributed.extract.extract_collection`: images (folder, glob or list file, any
  pyarrow/fsspec filesystem) -> sharded features (Parquet or hloc h5), resumable, bad images in an error table;
- :func:`zippypoint.distributed.match.match_collection`: a pair list (``pairs.py``) -> sharded matches with the
  Hamming matcher, each image's features loaded once per task;
- :func:`zippypoint.distributed.merge.merge_to_hloc`: one hloc features.h5 / matches.h5 from the shards;
- ``zippypoint distributed extract|match|merge`` on the command line; ``docs/distributed.md`` for clusters.
Nothing here imports Ray until a function runs.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__all__, __getattr__, __dir__ = lazy_names(__name__, {
    "zippypoint.distributed.extract": ("ExtractionOptions", "extract_collection"),
    "zippypoint.distributed.match": ("MatchingOptions", "match_collection"),
    "zippypoint.distributed.sources": ("list_images",),
    "zippypoint.distributed.merge": ("merge_to_hloc",),
})
