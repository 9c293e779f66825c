"""scripts/binarisation_probe.py: every probed code has the format it claims, the deployed one is the
post-processing's own code, and an affine map that only rescales the channels leaves the code unchanged."""

from __future__ import annotations

import numpy as np
from conftest import load_script


def _module():
    return load_script("binarisation_probe")


def _stats(rng, d=256):
    train = rng.standard_normal((500, d)) * rng.uniform(0.5, 2.0, d) + rng.standard_normal(d)
    _, _, vt = np.linalg.svd(train - train.mean(0), full_matrices=False)
    return {"mean": train.mean(0), "std": train.std(0) + 1e-6, "components": vt[:64]}


def test_codes_have_their_formats():
    from zippypoint.binary_desc.packing import unpack_bits

    probe = _module()
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((40, 256))
    ones = {"top64": 64, "top96": 96, "top128": 128, "centred_top64": 64, "standardised_top64": 64,
            "random_projection_top64_0": 64}
    variants = probe.code_variants(_stats(rng))
    for name, k in ones.items():
        kind, codes = variants[name](raw)
        assert kind == "binary" and codes.dtype == np.uint8 and codes.shape == (40, 32), name
        assert (unpack_bits(codes).sum(1) == k).all(), name
    kind, desc = variants["float"](raw)
    assert kind == "float" and np.allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-5)


def test_deployed_code_is_the_postprocessing_code():
    from zippypoint.binary_desc.binarize import topk_binarize
    from zippypoint.binary_desc.packing import pack_bits

    probe = _module()
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((25, 256))
    assert np.array_equal(probe.code_variants(_stats(rng))["top64"](raw)[1], pack_bits(topk_binarize(raw, 64)))


def test_standardising_a_centred_rescaled_map_is_the_centred_code():
    probe = _module()
    rng = np.random.default_rng(2)
    stats = _stats(rng)
    stats = {**stats, "std": np.full(256, 3.0)}  # one scale for every channel: the order within a row is kept
    raw = rng.standard_normal((30, 256))
    variants = probe.code_variants(stats)
    assert np.array_equal(variants["standardised_top64"](raw)[1], variants["centred_top64"](raw)[1])
