"""Joining or starting Ray for a distributed run."""

from __future__ import annotations

import os


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
    """Connect to Ray unless this process already is: ``address`` ("auto", "ray://host:10001", "host:6379")
    joins an existing cluster; None starts a local instance on this machine's CPUs (no dashboard).

    ``runtime_env``: Ray's runtime environment for the workers of a remote cluster, e.g.
    ``{"pip": ["zippypoint[distributed]"]}`` or ``{"working_dir": "."}`` (the model itself travels with the job).
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs = {"runtime_env": runtime_env} if runtime_env else {}
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True, **kwargs)
    else:
        ray.init(address=address, **kwargs)
