"""Equal-budget ablations: plans are validated, every variant gets exactly the planned steps (ANA's window scaled to
them), results land in a table, a JSON and a figure, and finished runs are reused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from zippypoint.train.ablation import AblationPlan, main, variant_config

BASE = {"name": "tiny", "preset": "zippypoint-lean", "stage": "quantize", "height": 64, "width": 64, "batch_size": 2,
        "num_workers": 0, "val_fraction": 0.0, "lr_halving": [], "log_every": 1, "checkpoint_every": 1000,
        "val_every": 1000, "exclude_dev": False}
ANA = {"noise": "uniform", "strategy": "expectation", "schedule": "same_start"}


@pytest.fixture()
def plan_dir(tmp_path):
    from zippypoint.demo import sample_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    photo = sample_photo("coffee")
    for i in range(6):
        cv2.imwrite(str(photos / f"p{i}.jpg"), photo[10 * i : 10 * i + 120, 20 * i : 20 * i + 160])
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    plan = {"base": "base.json", "steps": 2, "variants": [
        {"name": "plain STE", "descriptors": ["binary", "float"]},
        {"name": "ANA same_start", "ana_window": 0.5, "overrides": {"ana": ANA, "lr": 1e-4}},
    ]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return tmp_path


def test_plan_validation(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"base": "b.json", "steps": 1, "variants": [], "extra": 1}))
    with pytest.raises(ValueError, match="unknown plan keys"):
        AblationPlan.from_file(tmp_path / "p.json")
    (tmp_path / "p.json").write_text(json.dumps({"base": "b.json", "steps": 1, "variants": []}))
    with pytest.raises(ValueError, match="no variants"):
        AblationPlan.from_file(tmp_path / "p.json")
    (tmp_path / "p.json").write_text(json.dumps({"base": "b.json", "steps": 1,
                                                 "variants": [{"name": "a b"}, {"name": "A-B"}]}))
    with pytest.raises(ValueError, match="must differ"):
        AblationPlan.from_file(tmp_path / "p.json")
    (tmp_path / "p.json").write_text(json.dumps({"base": "b.json", "steps": 1,
                                                 "variants": [{"name": "a", "ana_window": 1.5}]}))
    with pytest.raises(ValueError, match="ana_window"):
        AblationPlan.from_file(tmp_path / "p.json")


def test_variants_get_the_same_budget_and_a_scaled_ana_window(plan_dir):
    plan = AblationPlan.from_file(plan_dir / "plan.json")
    plain, ana = (variant_config(plan, v, plan_dir / "photos") for v in plan.variants)
    # 6 photos, batch 2: 3 steps an epoch, so 2 steps are 2/3 of an epoch; ANA closes at half of that
    assert plain.max_steps == ana.max_steps == 2
    assert plain.epochs == pytest.approx(2 / 3) and ana.epochs == pytest.approx(2 / 3)
    assert plain.ana is None and ana.ana["epochs"] == pytest.approx(1 / 3) and ana.ana["schedule"] == "same_start"
    assert ana.lr == 1e-4 and plain.lr == 1e-3 and plain.name == "plain-ste"  # 1e-3: the TrainConfig default


def test_end_to_end_table_json_figure_and_reuse(plan_dir, shared_data, capsys):
    dev = str(shared_data / "hpatches-dev")
    out = plan_dir / "out"
    args = ["--plan", str(plan_dir / "plan.json"), "--data", str(plan_dir / "photos"), "--dev", dev, "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in result["variants"]] == ["plain STE", "ANA same_start"]
    for row in result["variants"]:
        assert row["steps"] == 2 and row["pairs"] == 4
        for per_set in row["metrics"].values():
            metrics = per_set["hpatches-dev"]
            assert metrics["pairs"] == 6 and 0.0 <= metrics["mma_3"] <= 1.0 and 0.0 <= metrics["correctness_3"] <= 1.0
    assert set(result["variants"][0]["metrics"]) == {"binary", "float"}
    lines = (out / "ablation.md").read_text().splitlines()
    assert len(lines) == 2 + 3 and "plain STE | float | 2 steps (4 pairs)" in lines[3]
    assert cv2.imread(str(out / "ablation.png")) is not None
    weights = out / "plain-ste" / "final.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert main(args + ["--only", "plain-ste"]) == 0  # a finished run is evaluated again, not retrained
    assert weights.stat().st_mtime_ns == stamp
    assert len(json.loads((out / "ablation.json").read_text())["variants"]) == 1
    with pytest.raises(SystemExit):
        main(args + ["--only", "nothing"])
    assert "no variant" in capsys.readouterr().err
    assert (out / "ana-same-start" / "final.safetensors").is_file()


def test_both_descriptor_kinds_from_one_network_run_equal_separate_evaluations(shared_data, monkeypatch):
    from zippypoint.eval.hpatches import find_sequences
    from zippypoint.model.registry import create_model
    from zippypoint.train import diagnostics

    dev = shared_data / "hpatches-dev"
    model = create_model("zippypoint-lean").eval()
    calls = []
    real = diagnostics.dense_maps
    monkeypatch.setattr(diagnostics, "dense_maps", lambda *a, **k: calls.append(1) or real(*a, **k))
    both = diagnostics.evaluate_dev_kinds(model, dev, (160, 120), 100, (0.0,), ("binary", "float"))
    runs = len(calls)
    assert runs == sum(len(s.images) for s in find_sequences(dev))  # the network ran once per image
    for kind in ("binary", "float"):
        assert both[kind] == diagnostics.evaluate_dev(model, dev, (160, 120), 100, (0.0,), kind)
    assert len(calls) == 3 * runs


def test_dev_selection_reports_c3_over_ransac_orders(shared_data):
    """The selection table's C3 over several RANSAC orders: the first order is the plain C3's, the mean is a
    fraction, and one order reproduces the plain C3."""
    from zippypoint.model.registry import create_model
    from zippypoint.train import diagnostics

    dev = shared_data / "hpatches-dev"
    model = create_model("zippypoint-slim-h64", pretrained=True).eval()
    one = diagnostics.evaluate_dev(model, dev, (320, 240), 300, (0.0,))["dedupe_0"]
    many = diagnostics.evaluate_dev(model, dev, (320, 240), 300, (0.0,), ransac_orders=6)["dedupe_0"]
    assert one["ransac_orders"] == 1 and many["ransac_orders"] == 6
    assert one["correctness_3_orders"] == one["correctness_3"] == many["correctness_3"]
    assert 0.0 <= many["correctness_3_orders"] <= 1.0
    # every pair has matches here, so the misses at 3 px split what MMA@3 leaves
    assert one["mma_3"] + sum(one["wrong_matches"].values()) == pytest.approx(1.0)
    assert {k: v for k, v in one.items() if "orders" not in k} == {k: v for k, v in many.items() if "orders" not in k}


def test_diagnostics_refuses_missing_inputs_before_evaluating_anything(tmp_path, monkeypatch, capsys):
    """A missing weights file or data folder is reported at once, not after the shipped weights' evaluation."""
    from zippypoint.train import diagnostics

    monkeypatch.setattr(diagnostics, "load_model", lambda *a: pytest.fail("evaluated before checking the inputs"))
    with pytest.raises(SystemExit) as exc:
        diagnostics.main(["dev", "--weights", "shipped", "--weights", str(tmp_path / "step_000600.safetensors"),
                          "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "step_000600.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_seeds_train_each_variant_once_per_seed_and_pair_the_differences(plan_dir, shared_data):
    """With seeds every variant runs once per seed, the row's metrics are the mean over seeds, and the paired table
    subtracts the first variant's run of the same seed; C3 is averaged over the plan's RANSAC orders."""
    plan = json.loads((plan_dir / "plan.json").read_text())
    plan["steps"], plan["seeds"], plan["ransac_orders"] = 1, [3, 4], 3
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    loaded = AblationPlan.from_file(plan_dir / "plan.json")
    assert loaded.seeds == (3, 4) and loaded.ransac_orders == 3
    out = plan_dir / "out"
    dev = str(shared_data / "hpatches-dev")
    assert main(["--plan", str(plan_dir / "plan.json"), "--data", str(plan_dir / "photos"), "--dev", dev,
                 "--out", str(out)]) == 0
    result = json.loads((out / "ablation.json").read_text())
    plain, ana = result["variants"]
    for row, slug in ((plain, "plain-ste"), (ana, "ana-same-start")):
        assert [r["seed"] for r in row["runs"]] == [3, 4]
        assert all((out / slug / f"seed-{n}" / "final.safetensors").is_file() for n in (3, 4))
        runs = [r["metrics"]["binary"]["hpatches-dev"]["mma_3"] for r in row["runs"]]
        assert row["metrics"]["binary"]["hpatches-dev"]["mma_3"] == pytest.approx(sum(runs) / 2)
        causes = [r["metrics"]["binary"]["hpatches-dev"]["wrong_matches"]["detector"] for r in row["runs"]]
        assert row["metrics"]["binary"]["hpatches-dev"]["wrong_matches"]["detector"] == pytest.approx(sum(causes) / 2)
    (diff,) = result["paired_differences"]
    expected = [a["metrics"]["binary"]["hpatches-dev"]["mma_3"] - p["metrics"]["binary"]["hpatches-dev"]["mma_3"]
                for p, a in zip(plain["runs"], ana["runs"], strict=True)]
    got = diff["sets"]["hpatches-dev"]["mma_3"]
    assert set(diff["sets"]["hpatches-dev"]) == {"correctness_3_orders", "mma_3"}
    assert got["mean"] == pytest.approx(sum(expected) / 2)
    assert got["min"] == pytest.approx(min(expected)) and got["max"] == pytest.approx(max(expected))
    text = (out / "ablation.md").read_text()
    assert "hpatches-dev C3/3 / MMA@3" in text and "2 seeds" in text and "Paired differences" in text
    assert "| ANA same_start | " in text.split("Paired")[1]
    assert all(r["metrics"]["binary"]["hpatches-dev"]["ransac_orders"] == 3 for r in plain["runs"])
    with pytest.raises(ValueError, match="seeds"):
        AblationPlan.from_file(_write(plan_dir, {**plan, "seeds": [1, 1]}))


def test_mean_metrics_average_nested_values_and_drop_undefined_ones():
    from zippypoint.train.ablation import mean_metrics

    runs = [{"binary": {"s": {"mma_3": 0.5, "pairs": 6, "wrong_matches": {"detector": 0.1}, "loc": None}}},
            {"binary": {"s": {"mma_3": 0.7, "pairs": 6, "wrong_matches": {"detector": 0.3}, "loc": 1.0}}}]
    mean = mean_metrics(runs)["binary"]["s"]
    assert mean["mma_3"] == pytest.approx(0.6) and mean["pairs"] == 6
    assert mean["wrong_matches"]["detector"] == pytest.approx(0.2) and mean["loc"] is None
    assert mean_metrics(runs[:1]) == runs[0]


def _write(folder, plan):
    path = folder / "other.json"
    path.write_text(json.dumps(plan))
    return path


SHIPPED_PLANS = sorted((Path(__file__).parents[1] / "configs" / "ablations").glob("*.json"))


@pytest.mark.parametrize("plan_file", SHIPPED_PLANS, ids=lambda p: p.name)
def test_shipped_plans_build_every_variant_with_an_accepted_annealing_layout(plan_file, plan_dir):
    from zippypoint.model.registry import create_model
    from zippypoint.quant.annealing import SCHEDULES
    from zippypoint.train.trainer import build_annealing

    plan = AblationPlan.from_file(plan_file)
    schedules = set()
    for variant in plan.variants:
        cfg = variant_config(plan, variant, plan_dir / "photos", seed=plan.seeds[0] if plan.seeds else None)
        assert cfg.max_steps == plan.steps
        controller = build_annealing(create_model(cfg.preset), cfg)  # the trainer's own check of the layout
        assert (controller is None) == (variant.ana_window is None)
        if controller is not None:
            assert controller.num_groups > 1
            schedules.add(controller.config.schedule)
    if plan_file.name == "default.json":  # the default's plan compares every ANA layout the library has with STE
        assert schedules == set(SCHEDULES)


def test_figure_adds_the_paired_difference_panel_when_there_are_seeds(tmp_path):
    from zippypoint.train.ablation import plot

    def row(name, values):  # two seeds, one set
        runs = [{"seed": s, "metrics": {"binary": {"dev": {"mma_3": v, "correctness_3_orders": v}}}}
                for s, v in zip((1, 2), values, strict=True)]
        mean = sum(values) / 2
        return {"name": name, "metrics": {"binary": {"dev": {"mma_3": mean, "correctness_3_orders": mean}}},
                "runs": runs}

    rows = [row("a", [0.80, 0.82]), row("b", [0.78, 0.79])]
    plot(rows, ["x/dev"], tmp_path / "seeds.png")
    single = [{k: v for k, v in r.items() if k != "runs"} for r in rows]
    plot(single, ["x/dev"], tmp_path / "single.png")
    with_seeds, without = cv2.imread(str(tmp_path / "seeds.png")), cv2.imread(str(tmp_path / "single.png"))
    assert with_seeds is not None and without is not None
    assert with_seeds.shape[1] == 2 * without.shape[1]  # a second panel of the same width
