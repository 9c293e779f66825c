"""Batch extraction as a user runs it on the packaged int8 model: sub-folders mirrored, same stems kept apart,
resume (finished outputs skipped), --overwrite, and outputs written whole or not at all."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zippypoint.cli import main
from zippypoint.demo import sample_photo


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    small = cv2.resize(sample_photo("coffee"), (160, 112), interpolation=cv2.INTER_AREA)
    for rel in ["x.jpg", "x.png", "a/x.jpg", "a/b/y.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), small if "y" not in rel else small[:, ::-1])
    return root


def _files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_mirrors_folders_keeps_same_stems_and_resumes(photos, tmp_path, capsys):
    out = tmp_path / "feats"
    assert main(["extract", str(photos), "--out", str(out), "--max-keypoints", "64"]) == 0
    assert _files(out) == ["a/b/y.npz", "a/x.npz", "x.npz", "x.png.npz"]
    assert "wrote 4 image(s)" in capsys.readouterr().out
    with np.load(out / "a/b/y.npz") as f:
        assert f["descriptors"].shape == (len(f["scores"]), 32) and 0 < len(f["scores"]) <= 64
    stamp = (out / "x.npz").stat().st_mtime_ns

    assert main(["extract", str(photos), "--out", str(out), "--max-keypoints", "64"]) == 0
    text = capsys.readouterr().out
    assert "wrote 0 image(s)" in text and "skipped 4 already done" in text
    assert (out / "x.npz").stat().st_mtime_ns == stamp

    (out / "a/x.npz").unlink()  # an interrupted run: only the missing output is redone
    assert main(["extract", str(photos), "--out", str(out), "--max-keypoints", "64"]) == 0
    assert "wrote 1 image(s)" in capsys.readouterr().out and (out / "a/x.npz").is_file()

    assert main(["extract", str(photos), "--out", str(out), "--max-keypoints", "64", "--overwrite"]) == 0
    assert "wrote 4 image(s)" in capsys.readouterr().out


def test_files_given_one_by_one_land_by_name(photos, tmp_path, capsys):
    out = tmp_path / "feats"
    files = [str(photos / "x.jpg"), str(photos / "a" / "x.jpg"), str(photos / "a" / "x.jpg")]
    assert main(["extract", *files, "--out", str(out)]) == 1  # the same file twice is reported once
    assert _files(out) == ["x.jpg.npz", "x.npz"]  # same stem: the second keeps its suffix
    assert "rename one of them" in capsys.readouterr().err


def test_a_failed_write_leaves_no_partial_file(photos, tmp_path, monkeypatch, capsys):
    from zippypoint.commands import extract

    calls = []

    def failing_savez(f, **arrays):
        calls.append(1)
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    out = tmp_path / "feats"
    assert main(["extract", str(photos / "a"), "--out", str(out)]) == 1
    assert calls and _files(out) == []
    assert "disk full" in capsys.readouterr().err
    assert extract.save_npz  # the one writer used by the command
