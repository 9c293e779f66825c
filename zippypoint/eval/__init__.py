"""Evaluation on HPatches-layout data with the KP2D protocol (docs/design.md §6).

Modules: ``hpatches`` (reading sequence folders), ``protocol`` (the per-pair metrics), ``runner``
(cached predictions and the evaluation loop), ``report`` (JSON, Markdown, plots), ``synthetic``
(HPatches-layout benchmarks from any image folder) and ``quick`` (the check run during training). The
methods it compares, and their matcher, come from ``zippypoint.methods``. Nothing here is imported by
``import zippypoint``.
"""
