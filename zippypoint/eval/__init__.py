"""Evaluation on HPatches-layout data with the KP2D protocol (see SPEC section 6).

Modules: ``hpatches`` (reading sequence folders), ``protocol`` (the per-pair metrics), ``matching``
(mutual / one-way nearest neighbours), ``methods`` (the method interface and registry), ``runner``
(cached predictions and the evaluation loop), ``report`` (JSON, Markdown, plots), ``synthetic``
(HPatches-layout benchmarks from any image folder) and ``peer_weights`` (offline weights for the
learned peers). Nothing here is imported by ``import zippypoint``.
"""
