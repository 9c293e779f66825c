"""Speed benchmark of our extractor against its peers (``zippypoint benchmark``).

Modules: ``environment`` (machine, ISA flags, library versions, thread settings), ``models`` (exports cached
in a work folder), ``methods`` (every timed method behind one staged interface: peers from
``zippypoint.methods``, ours through the stages of the shared extractor base), ``matching``
(descriptor-matching throughput), ``profile`` (per-layer ONNX Runtime and OpenVINO profiles), ``report`` (Markdown, PNG
charts), ``runner`` (the whole benchmark). The timing loop and statistics are ``zippypoint.timing``.
Nothing here imports torch at module level.
"""
