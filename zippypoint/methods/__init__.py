"""Every keypoint method behind one interface: ours on every runtime and the OpenCV / kornia peers.

``create_method(name, max_keypoints)`` builds one (``load()`` then reads weights or raises
``MethodUnavailable`` with the reason); a method maps a BGR image to keypoints, scores and descriptors and
matches two such feature sets (``match``). Used by evaluation, benchmark and every later consumer.

Modules: ``base`` (interface, output contract), ``matching`` (the matcher by descriptor kind), ``registry``
(names, ``create_method``, the candidate budget), ``ours``, ``opencv_peers``, ``kornia_peers`` and
``peer_weights`` (offline weights of the learned peers: ``python -m zippypoint.methods.peer_weights``).
Importing this package imports neither torch nor OpenCV.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__all__, __getattr__, __dir__ = lazy_names(__name__, {
    "zippypoint.methods.base": ("Method", "MethodUnavailable", "check_features", "sorted_features"),
    "zippypoint.methods.registry": ("create_method", "candidate_budget", "default_method_names", "PEER_NAMES"),
})
