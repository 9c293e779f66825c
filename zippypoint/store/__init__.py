"""Feature and match stores on disk.

``zippypoint.store.hloc`` writes and reads the HDF5 layout of the hloc localisation toolbox
(features.h5 / matches.h5). h5py is imported only when a store function runs.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__all__, __getattr__, __dir__ = lazy_names(__name__, {
    "zippypoint.store.hloc": (
        "write_features", "read_features", "list_names", "write_matches", "read_matches", "names_to_pair",
        "unpack_to_float", "image_name",
    ),
})
