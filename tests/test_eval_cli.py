"""``zippypoint make-benchmark`` and ``zippypoint evaluate`` end to end on a tiny generated benchmark."""

import json

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from zippypoint.cli import main
from zippypoint.eval.hpatches import find_sequences, read_image_bgr
from zippypoint.eval.protocol import warp_points


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    images = root / "images"
    (images / "nested").mkdir(parents=True)
    for name, rgb in (("astronaut", skdata.astronaut()), ("coffee", skdata.coffee())):
        cv2.imwrite(str(images / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(images / "nested" / "camera.jpg"), skdata.camera())
    (images / "broken.png").write_bytes(b"")  # skipped with a message
    out = root / "data"
    code = main(["make-benchmark", "--images", str(images), "--out", str(out), "--sequences", "3",
                 "--per-sequence", "2", "--max-side", "320", "--seed", "1"])
    assert code == 0
    return out


def test_make_benchmark_writes_the_hpatches_layout(benchmark):
    sequences = find_sequences(benchmark)
    assert len(sequences) == 3
    for sequence in sequences:
        assert sorted(p.name for p in sequence.path.iterdir()) == ["1.png", "2.png", "3.png", "H_1_2", "H_1_3"]
        assert sequence.name.startswith("v_")
        image1 = read_image_bgr(sequence.images[1])
        assert max(image1.shape[:2]) <= 320
        for k, homography in sequence.homographies.items():
            # Image k really is image 1 seen through H_1_k (up to the illumination change).
            warped = cv2.warpPerspective(image1, homography, image1.shape[1::-1])
            imagek = read_image_bgr(sequence.images[k]).astype(np.float64)
            w, h = image1.shape[1], image1.shape[0]
            centre = warp_points(np.array([[w / 2, h / 2]]), homography)[0]
            assert 0 <= centre[0] < w and 0 <= centre[1] < h
            a = warped[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].astype(np.float64).ravel()
            b = imagek[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].ravel()
            assert np.corrcoef(a, b)[0, 1] > 0.6
    record = json.loads((benchmark / "benchmark.json").read_text())
    assert len(record["sequences"]) == 3 and record["config"]["seed"] == 1


def test_make_benchmark_refuses_to_overwrite_and_reports_missing_input(benchmark, tmp_path, capsys):
    images = tmp_path / "img"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), skdata.camera())
    assert main(["make-benchmark", "--images", str(images), "--out", str(tmp_path / "o"), "--sequences", "1",
                 "--per-sequence", "1"]) == 0
    assert main(["make-benchmark", "--images", str(images), "--out", str(tmp_path / "o"), "--sequences", "1",
                 "--per-sequence", "1"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["make-benchmark", "--images", str(tmp_path / "none"), "--out", str(tmp_path / "p")]) == 2


def test_evaluate_runs_the_protocol_and_writes_reports(benchmark, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path / "empty-cache"))  # no peer weights here
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(benchmark), "--out", str(out), "--methods", "orb,sift,xfeat",
            "--resolution", "320x240", "--quiet"]
    assert main(args) == 0
    assert "python -m zippypoint.methods.peer_weights" in capsys.readouterr().err
    for name in ("results.json", "results.md", "mma.png", "matches_orb.png", "matches_sift.png"):
        assert (out / name).stat().st_size > 0, name

    results = json.loads((out / "results.json").read_text())
    assert {"python", "torch", "opencv", "kornia", "onnxruntime", "cpu"} <= results["environment"].keys()
    assert results["dataset"]["pairs"] == 6 and len(results["dataset"]["sequences"]) == 3
    assert results["protocol"]["ransac_orders"] == 256  # the default budget of 1536 RANSAC runs on 6 pairs
    assert results["protocol"]["resolutions"] == [{"size": "320x240", "top_k": 300, "candidates": 1200}]
    assert "peer_weights" in results["methods"]["xfeat"]["skipped"]
    for name in ("orb", "sift"):
        res = results["methods"][name]["resolutions"]["320x240"]
        assert len(res["pairs"]) == 6
        summary = res["summary"]
        for key in ("repeatability", "correctness_1", "correctness_3", "correctness_5", "matching_score"):
            assert 0.0 <= summary[key] <= 1.0, key
        assert summary["correctness_1"] <= summary["correctness_3"] <= summary["correctness_5"]
        assert 0.0 <= summary["localization_error"] <= 3.0
        mma = [summary["mma"][str(t)] for t in range(1, 11)]
        assert mma == sorted(mma) and 0.0 <= mma[0] and mma[-1] <= 1.0
        assert 0.0 <= summary["auc"]["3"] <= summary["auc"]["10"] <= 1.0
        assert 0 < summary["mean_keypoints"] <= 300
        wrong = summary["wrong_matches"]
        assert min(wrong.values()) >= 0.0 and mma[2] + sum(wrong.values()) <= 1.0 + 1e-9
        # a pair with matches splits them fully (MMA@3 + misses = 1); a pair without contributes zeros
        assert all(p["mma"][2] + sum(p["wrong_matches"].values()) == pytest.approx(1.0 if p["matches"] else 0.0)
                   for p in res["pairs"])
    # Mild synthetic viewpoint changes: SIFT must find most homographies.
    assert results["methods"]["sift"]["resolutions"]["320x240"]["summary"]["correctness_5"] >= 0.5
    table = (out / "results.md").read_text()
    assert "| orb | 320x240 | 300 |" in table and "`xfeat`" in table
    assert "| method | resolution | MMA@3 | wrong: descriptor | wrong: detector |" in table

    # Predictions are cached per image; a rerun reuses them and --overwrite recomputes the same numbers.
    cached = sorted((out / "cache" / "sift" / "320x240").rglob("*.npz"))
    assert len(cached) == 9
    stamp = cached[0].stat().st_mtime_ns
    assert main(args) == 0
    assert cached[0].stat().st_mtime_ns == stamp
    assert main([*args, "--overwrite"]) == 0
    assert cached[0].stat().st_mtime_ns != stamp
    again = json.loads((out / "results.json").read_text())
    assert again["methods"]["sift"] == results["methods"]["sift"]


def test_evaluate_reports_bad_input_clearly(benchmark, tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["evaluate", "--data", str(benchmark), "--out", out, "--methods", "orb,superpoint"]) == 2
    assert "unknown method 'superpoint'" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "none"), "--out", out, "--methods", "orb"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(benchmark), "--out", out, "--methods", "orb",
                 "--figure-pair", "v_nope/2"]) == 2
    assert "not a pair" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(benchmark), "--out", out, "--methods", "orb", "--resolution", "big"]) == 2
    broken = tmp_path / "broken" / "v_x"
    broken.mkdir(parents=True)
    cv2.imwrite(str(broken / "1.png"), skdata.camera())
    cv2.imwrite(str(broken / "2.png"), skdata.camera())
    assert main(["evaluate", "--data", str(broken.parent), "--out", out, "--methods", "orb"]) == 2
    assert "has no homography file H_1_2" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_our_extractor_from_a_weights_file(benchmark, tmp_path):
    pytest.importorskip("zippypoint.extractor")
    from safetensors.torch import save_file

    from zippypoint.model.registry import create_model

    weights = tmp_path / "checkpoint.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("zippypoint").state_dict().items()}, str(weights))
    out = tmp_path / "report"
    name = f"zippypoint={weights}"
    assert main(["evaluate", "--data", str(benchmark), "--out", str(out), "--methods", name,
                 "--resolution", "320x240", "--ransac-orders", "3", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["ransac_orders"] == 3 and "| C3/3 |" in (out / "results.md").read_text()
    entry = results["methods"][name]["resolutions"]["320x240"]
    assert len(entry["settings"]["weights_sha256"]) == 64
    assert 0.0 <= entry["summary"]["repeatability"] <= 1.0


def test_ransac_orders_are_checked(benchmark, tmp_path, capsys):
    assert main(["evaluate", "--data", str(benchmark), "--out", str(tmp_path), "--methods", "orb",
                 "--ransac-orders", "0", "--quiet"]) == 2
    assert "--ransac-orders" in capsys.readouterr().err
