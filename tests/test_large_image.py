"""Bounded memory and time on a large photo: a 6000x4000 JPEG through `zippypoint extract` (default policy:
the network sees at most 2048 px on the longest side; keypoints come back in original pixels). Peak memory is
measured in a child process with resource.getrusage."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from zippypoint.demo import sample_photo

PEAK_LIMIT_MB = 3000  # measured about 1.2 GB (int8, 2 cores); before the policy the same run passed 14 GB

# A small launcher runs the command as its own child and reads that child's peak: ru_maxrss survives execve,
# so a process forked straight from the (large) test process would report the test process's memory.
LAUNCHER = """
import json, resource, subprocess, sys
code = subprocess.run([sys.executable, "-m", "zippypoint.cli", *sys.argv[1:]]).returncode
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"code": code, "peak_mb": peak_mb}))
"""


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "photo.jpg"
    photo = cv2.resize(sample_photo("coffee"), (6000, 4000), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).integers(-4, 5, photo.shape, dtype=np.int16)
    cv2.imwrite(str(path), np.clip(photo + noise, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def _extract(photo, out, *extra):
    res = subprocess.run([sys.executable, "-c", LAUNCHER, "extract", str(photo), "--out", str(out), *extra],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_6000x4000_photo_in_bounded_memory_with_keypoints_in_original_pixels(big_photo, tmp_path):
    result = _extract(big_photo, tmp_path / "feats")
    assert result["code"] == 0
    assert result["peak_mb"] < PEAK_LIMIT_MB, result
    with np.load(tmp_path / "feats" / "photo.npz") as f:
        kpts = f["keypoints"]
    assert len(kpts) == 1000
    assert kpts.min() >= 0 and kpts[:, 0].max() <= 5999 and kpts[:, 1].max() <= 3999
    assert kpts[:, 0].max() > 4000 and kpts[:, 1].max() > 2700  # spread over the original size, not 2048


def test_max_pixels_refuses_the_photo_from_its_header(big_photo, tmp_path):
    result = _extract(big_photo, tmp_path / "feats", "--max-pixels", "1000000")
    assert result["code"] == 1
    assert not (tmp_path / "feats" / "photo.npz").exists()
