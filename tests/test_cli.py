"""The command line as a user runs it: extract (batch, failures), match, demo without weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zippypoint.cli import main


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    from zippypoint.model.registry import DEFAULT_PRESET, create_model
    from zippypoint.model.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "random.safetensors"
    save_weights(create_model(DEFAULT_PRESET), path, {"preset": DEFAULT_PRESET})
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory, ):
    from zippypoint.demo import make_demo_pair

    root = tmp_path_factory.mktemp("imgs")
    a, b, _ = make_demo_pair("coffee")
    cv2.imwrite(str(root / "a.png"), cv2.resize(a, (240, 160)))
    (root / "sub").mkdir()
    cv2.imwrite(str(root / "sub" / "b.jpg"), cv2.resize(b, (240, 160)))
    (root / "broken.png").write_text("not an image")
    return root


def test_extract_writes_the_npz_contract_and_reports_failures(images, random_weights, tmp_path, capsys):
    out = tmp_path / "feats"
    code = main(["extract", str(images), str(images / "missing.png"), "--out", str(out),
                 "--weights", str(random_weights), "--max-keypoints", "50"])
    assert code == 1  # two inputs failed, the rest was processed
    err = capsys.readouterr().err
    assert "broken.png" in err and "missing.png" in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.npz", "sub/b.npz"]
    with np.load(out / "a.npz") as f:
        assert sorted(f.files) == ["descriptors", "keypoints", "scores"]
        assert f["keypoints"].dtype == np.float32 and f["keypoints"].shape == (50, 2)
        assert f["descriptors"].dtype == np.uint8 and f["descriptors"].shape == (50, 32)
        assert f["scores"].dtype == np.float32 and np.all(np.diff(f["scores"]) <= 0)


def test_extract_all_good_exits_zero(images, random_weights, tmp_path):
    assert main(["extract", str(images / "a.png"), "--out", str(tmp_path), "--weights", str(random_weights)]) == 0


def test_match_prints_counts_and_writes_a_picture(images, random_weights, tmp_path, capsys):
    out = tmp_path / "m.png"
    code = main(["match", str(images / "a.png"), str(images / "sub" / "b.jpg"), "--out", str(out),
                 "--weights", str(random_weights), "--json", str(tmp_path / "m.json")])
    assert code == 0
    assert "matches:" in capsys.readouterr().out
    pic = cv2.imread(str(out))
    assert pic.shape[1] == 480
    assert (tmp_path / "m.json").exists()


def test_demo_without_shipped_weights_says_so(monkeypatch, tmp_path, capsys):
    from zippypoint.model import registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)  # a checkout without weights
    assert main(["demo", "--model", "zippypoint", "--out", str(tmp_path / "d.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no pretrained weights are shipped" in err and "--weights FILE" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_demo_with_given_weights_runs_end_to_end(random_weights, tmp_path, capsys):
    out = tmp_path / "d.png"
    assert main(["demo", "--weights", str(random_weights), "--out", str(out), "--max-keypoints", "200"]) == 0
    text = capsys.readouterr().out
    assert "matches:" in text and "homography corner error" in text
    assert cv2.imread(str(out)) is not None
