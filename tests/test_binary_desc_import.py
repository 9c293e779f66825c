"""The numpy-side binary descriptor code must work without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import numpy as np
import zippypoint.binary_desc as bd
from zippypoint.binary_desc import binarize, hamming, matcher, packing
bits = bd.topk_binarize(np.random.default_rng(0).normal(size=(8, 256)), 64)
packed = bd.pack_bits(bits)
assert bd.hamming_distance_matrix(packed, packed).shape == (8, 8)
assert bd.match_hamming(packed, packed, ratio=None).shape == (8, 2)
assert "lml_projection" in dir(bd)
assert "torch" not in sys.modules, "torch was imported"
"""


def test_numpy_modules_do_not_import_torch():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_unknown_attribute_is_an_attribute_error():
    import zippypoint.binary_desc as bd

    with pytest.raises(AttributeError, match="no_such_name"):
        bd.no_such_name  # noqa: B018
