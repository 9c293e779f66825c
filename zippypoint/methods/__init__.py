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

_LAZY = {
    "Method": "zippypoint.methods.base",
    "MethodUnavailable": "zippypoint.methods.base",
    "check_features": "zippypoint.methods.base",
    "sorted_features": "zippypoint.methods.base",
    "create_method": "zippypoint.methods.registry",
    "candidate_budget": "zippypoint.methods.registry",
    "default_method_names": "zippypoint.methods.registry",
    "PEER_NAMES": "zippypoint.methods.registry",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
