"""``zippypoint benchmark`` end to end on a tiny setting (2 runs at 160x120, ORB and our PyTorch runtime):
the JSON structure, medians <= p90, the files written, and staged timing computing what ``extract`` computes.
No timing assertions: the machine is shared."""

import json

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from zippypoint.bench.methods import MethodFactory, check_method_name
from zippypoint.bench.models import ExportCache
from zippypoint.bench.report import attach_accuracy, markdown_report, write_outputs
from zippypoint.bench.runner import BenchmarkConfig, parse_resolution
from zippypoint.cli import main
from zippypoint.resolve import resolve_model

METHODS = ["orb", "zippypoint:pytorch"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("astronaut", "coffee"):
        path = root / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(getattr(skdata, name)(), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def run(tmp_path_factory, photos):
    out = tmp_path_factory.mktemp("bench-out")
    code = main(["benchmark", "--out", str(out), "--resolutions", "160x120", "--runs", "2", "--warmup", "1",
                 "--block", "1", "--threads", "1", "--methods", ",".join(METHODS), "--images", ",".join(map(str, photos)),
                 "--matching-sizes", "64", "--no-profile", "--random-weights", "--work", str(out / "work"),
                 "--quiet"])
    return code, out, json.loads((out / "benchmark.json").read_text())


def test_exit_code_and_files(run):
    code, out, _ = run
    assert code == 0
    for name in ("benchmark.json", "benchmark.md", "speed.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "speed_vs_accuracy.png").exists()  # no --accuracy


def test_json_structure(run):
    _, _, results = run
    assert results["schema"] == "zippypoint-benchmark/1"
    settings = results["settings"]
    assert settings["runs"] == 2 and settings["warmup"] == 1 and settings["threads"] == 1 and settings["block"] == 1
    assert settings["resolutions"] == [{"size": "160x120", "top_k": 62}]
    env = results["environment"]
    for key in ("cpu", "isa", "threads", "libraries", "load_average_start", "load_average_end", "usable_cores",
                "oversubscribed"):
        assert key in env
    assert env["threads"] == 1
    assert results["weights"]["zippypoint"]["source"] == "random"
    methods = results["resolutions"]["160x120"]["methods"]
    assert set(methods) == set(METHODS)
    assert results["skipped"] == {} and results["failed"] == {}
    for entry in methods.values():
        for stats in [entry["end_to_end"], entry["matching"], *entry["stages"].values()]:
            assert stats["runs"] == 2
            assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["max_ms"]
        assert entry["fps"] == pytest.approx(1000 / entry["end_to_end"]["median_ms"])
        assert 0 <= entry["keypoints"] <= 62
        assert entry["matches"] <= min(entry["matching_keypoints"])
    assert set(methods["zippypoint:pytorch"]["stages"]) == {"pre", "network", "post"}
    assert "random" in methods["zippypoint:pytorch"]["weights"]
    assert methods["orb"]["stages"] == {}
    rows = results["matching_throughput"]
    assert {r["n"] for r in rows} == {64} and all(r["median_ms"] <= r["p90_ms"] for r in rows)
    assert results["summary"]["resolutions"]["160x120"]["ours_fps"] is None  # int8 was not asked for


def test_markdown_report_names_machine_and_methods(run):
    _, out, results = run
    text = (out / "benchmark.md").read_text()
    assert results["environment"]["cpu"] in text
    assert "## 160x120 (top-62)" in text and "`zippypoint:pytorch`" in text and "`orb`" in text
    assert "Load average" in text and "random (timing only" in text


def test_speed_against_accuracy(run, tmp_path):
    _, _, results = run
    evaluation = {"methods": {
        "orb": {"resolutions": {"160x120": {"summary": {"correctness_3": 0.5}}}},
        "zippypoint=some/checkpoint.safetensors": {"resolutions": {"160x120": {"summary": {"correctness_3": 0.75}}}},
        "sift": {"skipped": "no SIFT"},
    }}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(evaluation))
    attach_accuracy(results, path)
    methods = results["resolutions"]["160x120"]["methods"]
    assert methods["orb"]["accuracy"] == {"c3": 0.5, "from": "orb"}
    assert methods["zippypoint:pytorch"]["accuracy"]["c3"] == 0.75  # via the <preset>=* fallback
    written = write_outputs(results, tmp_path / "out")
    assert tmp_path / "out" / "speed_vs_accuracy.png" in written
    assert "| C3 |" in markdown_report(results)
    path.write_text(json.dumps({"not": "an evaluation"}))
    with pytest.raises(ValueError, match="results.json"):
        attach_accuracy(results, path)


def test_our_methods_time_the_stages_of_the_shared_extractor(photos, tmp_path):
    from zippypoint.eval.hpatches import read_image_bgr, resize_image
    from zippypoint.runtime.base import StagedExtractor

    weights = {"zippypoint": resolve_model("zippypoint", random_weights=True)}
    method = MethodFactory(ExportCache(tmp_path), weights, threads=1).build("zippypoint:pytorch", 100)
    assert isinstance(method.extractor, StagedExtractor)
    feats, stages = method.run(resize_image(read_image_bgr(photos[0]), (160, 120)))
    assert set(stages) == {"pre", "network", "post"} and 0 < len(feats["scores"]) <= 100
    image = resize_image(read_image_bgr(photos[0]), (160, 120))
    whole = method.extractor.extract(image)  # the timed stages are the path extract runs
    for key in ("keypoints", "scores", "descriptors"):
        np.testing.assert_array_equal(feats[key], whole[key])
    pairs = method.match(feats, feats)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2 and 0 < len(pairs) <= len(feats["scores"])


def test_bad_arguments_exit_with_2(tmp_path, capsys):
    assert main(["benchmark", "--out", str(tmp_path), "--methods", "nope", "--quiet"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["benchmark", "--out", str(tmp_path), "--runs", "0", "--quiet"]) == 2
    assert main(["benchmark", "--out", str(tmp_path), "--resolutions", "10x10", "--quiet"]) == 2
    assert main(["benchmark", "--out", str(tmp_path), "--weights", "zippypoint", "--quiet"]) == 2


def test_method_names_and_resolutions():
    check_method_name("zippypoint-fp:onnx-fp32")
    check_method_name("xfeat")
    for bad in ("zippypoint", "zippypoint:tflite", "unknown:pytorch", "superpoint"):
        with pytest.raises(ValueError, match="unknown method"):
            check_method_name(bad)
    assert parse_resolution("640x480").top_k == 1000
    assert parse_resolution("320x240").top_k == 300
    assert parse_resolution("512x384:500").top_k == 500
    assert parse_resolution("160x120").top_k == 62
    with pytest.raises(ValueError):
        BenchmarkConfig(images=("only-one.png",))


@pytest.mark.slow
def test_onnx_runtimes_and_profile(tmp_path, photos):
    """ONNX Runtime fp32 export, timed with stages, then profiled by layer (exports take tens of seconds);
    the export replaces a stale one of the same weights and is reused by the next run."""
    from dataclasses import asdict

    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    stale = {"preset": "zippypoint", "format": "onnx", "source_sha256": "older code",
             "weights": asdict(resolve_model("zippypoint", random_weights=True))}
    (work / "zippypoint-onnx-0123.onnx").write_bytes(b"stale")
    (work / "zippypoint-onnx-0123.onnx.json").write_text(json.dumps(stale))
    code = main(["benchmark", "--out", str(out), "--resolutions", "160x120", "--runs", "2", "--warmup", "1",
                 "--threads", "1", "--methods", "zippypoint:onnx-fp32,zippypoint:coreml",
                 "--images", ",".join(map(str, photos)), "--matching-sizes", "none", "--profile-runs", "2",
                 "--random-weights", "--work", str(tmp_path / "work"), "--quiet"])
    assert code == 0
    results = json.loads((out / "benchmark.json").read_text())
    entry = results["resolutions"]["160x120"]["methods"]["zippypoint:onnx-fp32"]
    assert set(entry["stages"]) == {"pre", "network", "post"}
    prof = results["profiles"]["zippypoint:onnx-fp32"]
    assert prof["size"] == "160x120" and prof["by_layer"][0]["layer"] in {
        "conv_in", "down1", "block1a", "block1b", "down2", "block2a", "block2b", "down3", "block3a", "block3b",
        "block4a", "block4b", "score_conv", "loc_conv", "desc_conv1", "desc_conv2", "desc_conv3", "desc_out"}
    assert (out / "profile_zippypoint_onnx-fp32.md").is_file() and (out / "profile_zippypoint_onnx-fp32.png").is_file()
    assert "zippypoint:coreml" in results["skipped"] or "zippypoint:coreml" in results["resolutions"]["160x120"]["methods"]
    # the export is cached: a second run reuses it
    exported = sorted((tmp_path / "work").glob("*.onnx"))
    assert len(exported) == 1 and exported[0].name != "zippypoint-onnx-0123.onnx"
    assert not (work / "zippypoint-onnx-0123.onnx.json").exists()
    stamp = exported[0].stat().st_mtime_ns
    assert main(["benchmark", "--out", str(out), "--resolutions", "64x48", "--runs", "1", "--warmup", "0",
                 "--threads", "1", "--methods", "zippypoint:onnx-fp32", "--images", ",".join(map(str, photos)),
                 "--matching-sizes", "none", "--no-profile", "--random-weights", "--work", str(tmp_path / "work"),
                 "--quiet"]) == 0
    assert sorted((tmp_path / "work").glob("*.onnx")) == exported and exported[0].stat().st_mtime_ns == stamp


def test_report_rewritten_from_json_with_accuracy(run, tmp_path):
    _, out, _ = run
    evaluation = {"methods": {"orb": {"resolutions": {"160x120": {"summary": {"correctness_3": 0.25}}}}}}
    (tmp_path / "results.json").write_text(json.dumps(evaluation))
    code = main(["benchmark", "--from-json", str(out / "benchmark.json"), "--accuracy", str(tmp_path / "results.json"),
                 "--out", str(tmp_path / "again"), "--quiet"])
    assert code == 0
    again = json.loads((tmp_path / "again" / "benchmark.json").read_text())
    assert again["resolutions"]["160x120"]["methods"]["orb"]["accuracy"] == {"c3": 0.25, "from": "orb"}
    assert (tmp_path / "again" / "speed_vs_accuracy.png").is_file()
    (tmp_path / "bad.json").write_text("{}")
    assert main(["benchmark", "--from-json", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x"), "--quiet"]) == 2


def test_int8_accuracy_comes_from_the_int8_evaluation_first():
    from types import SimpleNamespace

    from zippypoint.bench.methods import _accuracy_names
    from zippypoint.bench.report import find_accuracy

    accuracy = {"zippypoint": {"320x240": 0.5}, "onnx-int8:zippypoint": {"320x240": 0.4},
                "onnx:zippypoint": {"320x240": 0.45}}
    choice = SimpleNamespace(path=None)
    assert find_accuracy(accuracy, _accuracy_names("zippypoint", "onnx-int8", choice), "320x240") == \
        ("onnx-int8:zippypoint", 0.4)
    assert find_accuracy(accuracy, _accuracy_names("zippypoint", "onnx-fp32", choice), "320x240") == \
        ("onnx:zippypoint", 0.45)
    assert find_accuracy({"zippypoint": {"320x240": 0.5}}, _accuracy_names("zippypoint", "onnx-int8", choice),
                         "320x240") == ("zippypoint", 0.5)


def test_label_offsets_separate_nearby_points():
    from zippypoint.bench.report import label_offsets

    offsets = label_offsets([(19.6, 0.395), (19.5, 0.395), (20.0, 0.40), (700.0, 0.4), (19.6, 0.9)])
    assert len(set(offsets[:3])) == 3  # three labels at one place get three heights
    assert offsets[3] == offsets[4] == 3  # far points keep the default


def test_summary_compares_the_default_with_xfeat_and_the_paper_topology():
    from zippypoint.bench.methods import PAPER_PRESET, headline
    from zippypoint.bench.report import summary_lines
    from zippypoint.bench.runner import summarize

    def timed(fps):
        return {"fps": fps, "end_to_end": {"min_ms": 1000.0 / fps}}

    ours, paper = headline(), headline(PAPER_PRESET)
    assert ours != paper  # the default preset is not the paper topology
    results = {"environment": {}, "resolutions": {"320x240": {"methods": {
        ours: timed(150.0), paper: timed(30.0), "xfeat": timed(50.0), "zippypoint-fp:onnx-fp32": timed(10.0)}}}}
    summary = summarize(results)
    entry = summary["resolutions"]["320x240"]
    assert summary["headline"] == ours and summary["paper"] == paper
    assert entry["ours_over_xfeat"] == 3.0 and entry["ours_over_paper"] == 5.0
    assert entry["speedup_over_fp_onnx"] == 3.0  # the paper topology against itself in full precision
    assert entry["speedup_over_fp_pytorch"] is None  # not timed
    text = summary_lines({"summary": summary, "environment": {}})[0]
    assert "150.0 fps" in text and "ours/XFeat = 3.00" in text and "ours/paper = 5.00" in text


def test_fps_axes_are_labelled_in_plain_numbers_without_crowded_minor_labels():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from zippypoint.bench.report import _fps_log_axis

    figure = Figure()
    ax = figure.add_subplot()
    ax.barh([0, 1], [22.3, 73.0])
    _fps_log_axis(ax)
    ax.set_xlim(15, 600)
    FigureCanvasAgg(figure).draw()
    major = [t.get_text() for t in ax.get_xticklabels() if 15 <= t.get_position()[0] <= 600]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert major == ["20", "50", "100", "200", "500"]
    assert minor == []
