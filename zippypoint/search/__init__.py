"""Search of a lean ZippyPoint topology: a space around the paper design, latency measured on the real runtimes,
C-BRED-style reduction by clustering, a short-training accuracy proxy, a Pareto front (``zippypoint search``)."""
