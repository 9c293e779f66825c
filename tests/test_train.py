"""Training: configs, data, homographies, losses, resume determinism, distributed data parallel."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from zippypoint.io import list_images
from zippypoint.train.config import TrainConfig
from zippypoint.train.data import HomographyPairDataset, PhotometricConfig, photometric
from zippypoint.train.homography import HomographyConfig, apply_homography, sample_homography
from zippypoint.train.trainer import train

TINY = {"height": 64, "width": 64, "batch_size": 2, "num_workers": 0, "val_fraction": 0.0, "lr_halving": [],
        "log_every": 1, "checkpoint_every": 1000, "val_every": 1000, "epochs": 100}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, ):
    """8 real photo crops, plus a text file and a zero-byte file posing as images."""
    from zippypoint.demo import sample_photo

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    photo = sample_photo("coffee")
    sub = root / "nested"
    sub.mkdir()
    for i in range(8):
        y, x = rng.integers(0, 200), rng.integers(0, 400)
        cv2.imwrite(str((sub if i % 2 else root) / f"img{i}.jpg"), photo[y : y + 160, x : x + 200])
    (root / "broken.png").write_text("not an image")
    (root / "empty.jpg").write_bytes(b"")
    return root


def test_config_refuses_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown LossConfig keys"):
        TrainConfig.from_dict({"loss": {"margn": 0.3}})
    with pytest.raises(ValueError, match="stage"):
        TrainConfig.from_dict({"stage": "everything"})
    with pytest.raises(ValueError, match="multiple of 8"):
        TrainConfig.from_dict({"height": 100})


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parent.parent.glob("configs/*.json")))
def test_checked_in_configs_load(path):
    cfg = TrainConfig.from_file(path)
    assert cfg.to_dict()["name"] == json.loads(path.read_text())["name"]


def test_homographies_keep_the_patch_inside_the_image():
    rng = np.random.default_rng(0)
    corners = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
    for _ in range(200):
        h = torch.from_numpy(sample_homography(rng, HomographyConfig())).float()[None]
        mapped = apply_homography(h, corners)
        assert mapped.abs().max() <= 1.0 + 1e-4


def test_dataset_skips_bad_files_and_warps_consistently(image_folder):
    paths = list_images(image_folder)
    assert len(paths) == 10  # recursive, includes the two bad files
    ds = HomographyPairDataset(paths, 64, 80, seed=0, augment=False)
    items = [ds[i] for i in range(len(ds))]
    assert len(ds.bad) == 2
    assert all(it["source"].shape == (3, 64, 80) for it in items)
    # without augmentation the source is exactly the target seen through H (away from borders)
    from zippypoint.train.homography import norm_to_pixel, pixel_to_norm
    from zippypoint.train.losses import sample_map

    it = items[0]
    ys, xs = torch.meshgrid(torch.arange(8.0, 56.0, 4.0), torch.arange(8.0, 72.0, 4.0), indexing="ij")
    p = torch.stack([xs.flatten(), ys.flatten()], -1)[None]
    w = norm_to_pixel(apply_homography(it["homography"][None], pixel_to_norm(p, 80, 64)), 80, 64)
    a = sample_map(it["source"][None], p, 80, 64)
    b = sample_map(it["target"][None], w, 80, 64)
    assert (a - b).abs().mean() < 1e-3


def test_photometric_jitter_changes_pixels_and_is_seeded():
    img = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    cfg = PhotometricConfig(channel_shuffle_p=0, gray_p=0, noise_p=0, blur_kernels=(0,))
    a = photometric(img, np.random.default_rng(1), cfg)
    b = photometric(img, np.random.default_rng(1), cfg)
    assert np.array_equal(a, b)
    assert np.abs(a - img).mean() > 1e-3  # the colour jitter alone changes the image
    assert a.min() >= 0 and a.max() <= 1


def test_overfit_one_batch_lowers_the_loss(image_folder, tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "preset": "zippypoint-fp", "lr": 3e-3})
    train(cfg, image_folder, tmp_path / "run", overfit_batch=8, progress=False, device="cpu")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["total"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert min(losses[-3:]) < losses[0]
    assert (tmp_path / "run" / "final.safetensors").exists() and (tmp_path / "run" / "loss_curves.png").exists()


def test_periodic_hpatches_validation_is_logged(image_folder, tmp_path, shared_data):
    cfg = TrainConfig.from_dict({**TINY, "preset": "zippypoint-fp", "max_steps": 1})
    summary = train(cfg, image_folder, tmp_path / "hp", progress=False, device="cpu",
                    hpatches=shared_data / "hpatches-dev")
    assert 0 <= summary["hp_repeatability"] <= 1 and 0 <= summary["hp_mma_3"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "hp" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "val" and "hp_correctness_3" in r for r in rows)


def test_dry_run_writes_nothing(image_folder, tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "preset": "zippypoint"})
    result = train(cfg, image_folder, tmp_path / "dry", dry_run=True, progress=False, device="cpu")
    assert result["steps"] == 1
    assert not (tmp_path / "dry").exists()


def test_resume_mid_epoch_matches_an_uninterrupted_run(image_folder, tmp_path):
    base = {**TINY, "preset": "zippypoint", "stage": "quantize",
            "ana": {"noise": "uniform", "strategy": "expectation", "schedule": "sequential", "epochs": 2}}
    straight = train(TrainConfig.from_dict({**base, "max_steps": 6}), image_folder, tmp_path / "a",
                     progress=False, device="cpu")
    train(TrainConfig.from_dict({**base, "max_steps": 3}), image_folder, tmp_path / "b", progress=False, device="cpu")
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["config"]["stage"] == "quantize"  # the config travels in the checkpoint
    resumed = train(TrainConfig.from_dict({**base, "max_steps": 6}), image_folder, tmp_path / "b",
                    progress=False, device="cpu")
    assert resumed["steps"] == straight["steps"] == 6
    assert resumed["weights_digest"] == straight["weights_digest"]


def test_resume_refuses_a_changed_config(image_folder, tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "preset": "zippypoint-fp", "max_steps": 1})
    train(cfg, image_folder, tmp_path / "r", progress=False, device="cpu")
    with pytest.raises(ValueError, match="lr"):
        train(cfg.replace(lr=0.5), image_folder, tmp_path / "r", progress=False, device="cpu")


def test_non_finite_loss_aborts_after_patience(image_folder, tmp_path):
    from zippypoint.train.trainer import TrainingAborted

    cfg = TrainConfig.from_dict({**TINY, "preset": "zippypoint-fp", "nan_patience": 2,
                                 "loss": {"location_weight": float("nan")}})
    with pytest.raises(TrainingAborted, match="non-finite"):
        train(cfg, image_folder, tmp_path / "nan", progress=False, device="cpu")


def test_two_process_ddp_ranks_hold_identical_weights(image_folder, tmp_path):
    cfg = {**TINY, "preset": "zippypoint-fp", "max_steps": 2}
    out = tmp_path / "ddp"
    out.mkdir()
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(29500 + os.getpid() % 1000), str(worker), str(image_folder), str(out), json.dumps(cfg)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    d0 = (out / "digest_rank0.txt").read_text()
    d1 = (out / "digest_rank1.txt").read_text()
    assert d0 == d1
    from zippypoint.model.registry import create_model
    from zippypoint.train.trainer import state_digest

    torch.manual_seed(0)
    assert d0 != state_digest(create_model("zippypoint-fp"))  # training changed the weights
    assert (out / "final.safetensors").exists()


def test_release_of_a_snapshot_counts_its_steps(tmp_path):
    """Shipping a snapshot: the card records the snapshot's steps and time, not the whole run's."""
    import json

    from zippypoint.model.registry import create_model
    from zippypoint.model.weights import save_weights
    from zippypoint.train.release import release

    run = tmp_path / "stage"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"name": "stage"}))
    (run / "summary.json").write_text(json.dumps({"steps": 300, "wall_time_s": 600.0, "val_h_acc_3": 0.5}))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"kind": "train", "step": s, "time_s": 2.0 * s})
                                                 for s in (100, 200, 300)) + "\n")
    model = create_model("zippypoint-slim-h64")
    snapshot = run / "step_000200.safetensors"
    save_weights(model, snapshot, {"preset": "zippypoint-slim-h64", "steps": "200"})
    card = release("zippypoint-slim-h64", [run], dest=tmp_path / "out", weights=snapshot)
    stage = card["stages"][-1]
    assert (stage["steps"], stage["steps_run"], stage["wall_time_s"]) == (200, 300, 400.0)
    assert card["total_steps"] == 200 and stage["validation_of_final_weights"] == {"val_h_acc_3": 0.5}
    save_weights(model, run / "final.safetensors", {"preset": "zippypoint-slim-h64", "steps": "300"})
    card = release("zippypoint-slim-h64", [run], dest=tmp_path / "out")
    assert card["total_steps"] == 300 and "steps_run" not in card["stages"][-1]


def test_snapshot_average_is_the_mean_and_refuses_other_presets(tmp_path):
    """Averaging: floating tensors are the exact mean, counters come from the last snapshot, the steps are
    recorded; a snapshot of another preset is refused by name."""
    import pytest
    import torch

    from zippypoint.model.registry import create_model
    from zippypoint.model.weights import WeightsError, read_state_dict, save_weights
    from zippypoint.train.average import average_snapshots

    models = []
    for i, step in enumerate((300, 100, 200)):
        torch.manual_seed(i)
        m = create_model("zippypoint-slim-h64")
        for buf_name, buf in m.named_buffers():
            if buf_name.endswith("num_batches_tracked"):
                buf.fill_(step)
        save_weights(m, tmp_path / f"s{step}.safetensors", {"preset": "zippypoint-slim-h64", "steps": str(step)})
        models.append(m.state_dict())
    paths = [tmp_path / f"s{s}.safetensors" for s in (300, 100, 200)]
    meta = average_snapshots(paths, tmp_path / "avg.safetensors")
    state, file_meta = read_state_dict(tmp_path / "avg.safetensors")
    assert file_meta == meta and meta["averaged_from"] == "100,200,300" and meta["steps"] == "300"
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)  # a conv kernel
    expected = sum(sd[key].double() for sd in models) / 3
    assert torch.allclose(state[key].double(), expected, atol=1e-6)
    assert not torch.equal(state[key], models[0][key])
    counter = next(k for k in state if k.endswith("num_batches_tracked"))
    assert int(state[counter]) == 200  # the last file given, not a mean of counters
    save_weights(create_model("zippypoint-slim"), tmp_path / "other.safetensors", {"preset": "zippypoint-slim"})
    with pytest.raises(WeightsError, match="zippypoint-slim"):
        average_snapshots([paths[0], tmp_path / "other.safetensors"], tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="at least two"):
        average_snapshots(paths[:1], tmp_path / "bad.safetensors")


def test_release_continues_a_previous_card(tmp_path):
    """A continued preset keeps the earlier card's stages; an averaged file records its steps; a card of
    another preset is refused."""
    import json

    import pytest

    from zippypoint.model.registry import create_model
    from zippypoint.model.weights import save_weights
    from zippypoint.train.average import average_snapshots
    from zippypoint.train.release import release

    run = tmp_path / "stage2"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"name": "stage2"}))
    (run / "summary.json").write_text(json.dumps({"steps": 300, "wall_time_s": 600.0}))
    model = create_model("zippypoint-slim-h64")
    for step in (200, 300):
        save_weights(model, run / f"step_{step:06d}.safetensors", {"preset": "zippypoint-slim-h64", "steps": str(step)})
    average_snapshots([run / "step_000200.safetensors", run / "step_000300.safetensors"], run / "avg.safetensors")
    previous = tmp_path / "previous.card.json"
    previous.write_text(json.dumps({"preset": "zippypoint-slim-h64",
                                    "stages": [{"run": "stage1", "steps": 1000, "wall_time_s": 3000.0,
                                                "device": "cpu"}], "notes": ["stage 1 note"]}))
    card = release("zippypoint-slim-h64", [run], dest=tmp_path / "out", weights=run / "avg.safetensors",
                   previous_card=previous, notes=["stage 2 note"])
    assert card["notes"] == ["stage 1 note", "stage 2 note"]
    assert [s["run"] for s in card["stages"]] == ["stage1", "stage2"]
    assert card["total_steps"] == 1300 and card["stages"][-1]["averaged_from_steps"] == [200, 300]
    previous.write_text(json.dumps({"preset": "zippypoint-slim", "stages": []}))
    with pytest.raises(ValueError, match="zippypoint-slim"):
        release("zippypoint-slim-h64", [run], dest=tmp_path / "out2", weights=run / "avg.safetensors",
                previous_card=previous)
    assert not (tmp_path / "out2").exists()  # refused before anything was written


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the worker's pid from /proc (Linux)")
def test_sigterm_saves_the_checkpoint_stops_the_workers_and_the_same_command_resumes(image_folder, tmp_path):
    import signal
    import time

    config = tmp_path / "stage.json"
    config.write_text(json.dumps({**TINY, "preset": "zippypoint-fp", "num_workers": 1, "max_steps": 400}))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "zippypoint", "train", "--config", str(config), "--data", str(image_folder),
               "--out", str(out), "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "no training step within 300 s"
        time.sleep(0.2)
    children = {int(pid) for task in Path(f"/proc/{proc.pid}/task").iterdir()
                for pid in (task / "children").read_text().split()}
    assert children, "the DataLoader worker should be a child process"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM" in stderr and "resumes" in stderr
    stopped_at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 2 <= stopped_at < 400
    assert not (out / "final.safetensors").exists()  # not a finished run

    def alive(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status")
        try:
            return "\nState:\tZ" not in status.read_text()
        except FileNotFoundError:
            return False

    deadline = time.time() + 10
    while any(alive(pid) for pid in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children), "a DataLoader worker outlived the trainer"
    resumed = subprocess.run([*command, "--max-steps", str(stopped_at + 2)], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["steps"] == stopped_at + 2
