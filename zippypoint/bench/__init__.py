"""Speed benchmark of our extractor against its peers (``zippypoint benchmark``).

Modules: ``timing`` (statistics and the interleaved timing loop), ``environment`` (machine, ISA flags,
library versions, thread settings), ``models`` (exports cached in a work folder), ``methods`` (every timed
method behind one staged interface), ``matching`` (descriptor-matching throughput), ``profile`` (per-layer
ONNX Runtime profile), ``report`` (Markdown, PNG charts), ``runner`` (the whole benchmark).
Nothing here imports torch at module level.
"""
