"""Training recipe fixes: hard codes with LML gradients, repulsion, offset saturation, detached descriptor
points, rigid pixel-space rotations, the fixed development split and the distillation teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zippypoint.train.homography import (
    HomographyConfig,
    sample_pixel_homography,
    sample_training_homography,
)
from zippypoint.train.losses import (
    LossConfig,
    hard_codes,
    homographic_losses,
    repulsion_penalty,
    saturation_penalty,
    soft_codes,
    straight_through_codes,
    suppression_penalty,
)
from zippypoint.train.split import DEV_PERMILLE, is_dev_photo, split_dev


def _dense_outputs(seed: int, b: int = 2, h: int = 64, w: int = 80):
    """Random dense maps shaped like the network's, as leaf tensors."""
    g = torch.Generator().manual_seed(seed)
    hc, wc = h // 8, w // 8
    cx = torch.arange(wc).view(1, wc) * 8 + 3.5
    cy = torch.arange(hc).view(hc, 1) * 8 + 3.5
    grid = torch.stack([cx.expand(hc, wc), cy.expand(hc, wc)]).float()
    kp = (grid + torch.rand(b, 2, hc, wc, generator=g) * 2 - 1).requires_grad_(True)
    scores = torch.rand(b, 1, hc, wc, generator=g).requires_grad_(True)
    desc = torch.randn(b, 256, h // 4, w // 4, generator=g).requires_grad_(True)
    return {"keypoints": kp, "scores": scores, "descriptors": desc}


def test_straight_through_codes_are_the_inference_codes_with_lml_gradients():
    raw = torch.randn(5, 256, dtype=torch.float64, requires_grad=True)
    hard = straight_through_codes(raw, 64, 3.0)
    assert torch.equal(hard.detach(), hard_codes(raw, 64))
    assert torch.equal(hard.detach().sum(-1), torch.full((5,), 64.0, dtype=torch.float64))
    weights = torch.randn(5, 256, dtype=torch.float64)
    (g_hard,) = torch.autograd.grad((hard * weights).sum(), raw)
    (g_soft,) = torch.autograd.grad((soft_codes(raw, 64, 3.0) * weights).sum(), raw)
    assert torch.allclose(g_hard, g_soft)


def test_hamming_hit_rate_is_reported_and_equals_the_hit_rate_of_hard_codes():
    s, t = _dense_outputs(0), _dense_outputs(1)
    h = torch.eye(3).expand(2, 3, 3)
    soft = homographic_losses(s, t, h, LossConfig(), (80, 64))
    hard = homographic_losses(s, t, h, LossConfig(descriptor_forward="hard"), (80, 64))
    assert 0 <= float(soft["hamming_hit_rate"]) <= 1
    assert float(hard["descriptor_hit_rate"]) == float(hard["hamming_hit_rate"]) == float(soft["hamming_hit_rate"])


def test_descriptor_loss_moves_keypoints_only_without_detaching():
    h = torch.eye(3).expand(2, 3, 3)
    only_desc = dict(location_weight=0.0, score_weight=0.0, consistency_weight=0.0)
    grads = {}
    for detach in (False, True):
        s, t = _dense_outputs(2), _dense_outputs(3)
        loss = homographic_losses(s, t, h, LossConfig(**only_desc, detach_descriptor_points=detach), (80, 64))
        loss["total"].backward()
        grads[detach] = (s["keypoints"].grad, t["keypoints"].grad, s["descriptors"].grad)
    assert grads[False][0].abs().sum() > 0 and grads[False][1].abs().sum() > 0
    assert grads[True][0] is None or grads[True][0].abs().sum() == 0
    assert grads[True][1] is None or grads[True][1].abs().sum() == 0
    assert grads[True][2].abs().sum() > 0  # the descriptors still learn


def test_repulsion_is_zero_for_distinct_points_and_pushes_neighbours_apart():
    far = torch.tensor([[[10.0, 10.0], [20.0, 10.0], [10.0, 30.0]]])
    scores = torch.ones(1, 3)
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert float(repulsion_penalty(far, scores, mask, 3.0)) == 0.0
    near = torch.tensor([[[10.0, 10.0], [11.0, 10.0], [40.0, 40.0]]], requires_grad=True)
    penalty = repulsion_penalty(near, scores, mask, 3.0)
    assert float(penalty.detach()) > 0
    penalty.backward()
    moved = near.detach() - 0.5 * near.grad
    assert torch.dist(moved[0, 0], moved[0, 1]) > 1.0  # a descent step separates them
    # a masked-out cell and a zero-score cell do not count
    assert float(repulsion_penalty(near.detach(), torch.tensor([[1.0, 0.0, 1.0]]), mask, 3.0)) == 0.0
    assert float(repulsion_penalty(near.detach(), scores, torch.tensor([[True, False, True]]), 3.0)) == 0.0


def test_suppression_lowers_only_the_weaker_neighbour_and_moves_nothing():
    points = torch.tensor([[[10.0, 10.0], [11.0, 10.0], [40.0, 40.0]]], requires_grad=True)
    scores = torch.tensor([[0.9, 0.5, 0.7]], requires_grad=True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    penalty = suppression_penalty(points, scores, mask, 4.0)
    assert float(penalty.detach()) == pytest.approx(0.5 * (1 - 1 / 4.0) / 3)
    penalty.backward()
    assert points.grad is None or points.grad.abs().sum() == 0
    assert scores.grad[0, 1] > 0 and scores.grad[0, 0] == 0 and scores.grad[0, 2] == 0
    far = torch.tensor([[[10.0, 10.0], [20.0, 10.0], [10.0, 30.0]]])
    assert float(suppression_penalty(far, scores.detach(), mask, 4.0)) == 0.0
    # a masked-out stronger neighbour suppresses nothing
    assert float(suppression_penalty(points.detach(), scores.detach(), torch.tensor([[False, True, True]]), 4.0)) == 0.0


def test_repulsion_enters_the_total_loss():
    s, t = _dense_outputs(4), _dense_outputs(5)
    h = torch.eye(3).expand(2, 3, 3)
    base = homographic_losses(s, t, h, LossConfig(), (80, 64))
    rep = homographic_losses(s, t, h, LossConfig(repulsion_weight=2.0), (80, 64))
    total, base_total = float(rep["total"].detach()), float(base["total"].detach())
    assert total == pytest.approx(base_total + 2.0 * float(rep["repulsion"]), rel=1e-5)
    sup = homographic_losses(s, t, h, LossConfig(suppression_weight=3.0, suppression_radius=10.0), (80, 64))
    assert float(sup["suppression"]) > 0
    assert float(sup["total"].detach()) == pytest.approx(base_total + 3.0 * float(sup["suppression"]), rel=1e-5)


def test_saturation_penalty_only_beyond_the_bound_and_its_gradient_shrinks_the_logit():
    z = torch.tensor([0.5, -1.9, 3.0, -4.0], requires_grad=True)
    p = saturation_penalty(z, 2.0)
    assert float(p) == pytest.approx((1.0**2 + 2.0**2) / 4)
    p.backward()
    assert z.grad[0] == 0 and z.grad[1] == 0 and z.grad[2] > 0 and z.grad[3] < 0


def test_saturation_penalty_is_trained_on_the_location_heads_pre_tanh_values(tmp_path):
    import json

    from zippypoint.model.registry import create_model
    from zippypoint.train.config import TrainConfig
    from zippypoint.train.trainer import train

    # the trainer's hook on loc_out sees exactly the values whose tanh places the keypoints
    model = create_model("zippypoint-fp").eval()
    captured = []
    model.loc_out.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    centre = torch.arange(8.0) * 8 + 3.5
    assert torch.allclose(out["keypoints"][0, 0, 2:6, 2:6], centre[2:6] + 7 * torch.tanh(captured[0][0, 0, 2:6, 2:6]))

    folder = tmp_path / "imgs"
    folder.mkdir()
    import cv2

    from zippypoint.demo import sample_photo

    cv2.imwrite(str(folder / "a.png"), sample_photo("coffee")[:120, :160])
    cv2.imwrite(str(folder / "b.png"), sample_photo("coffee")[100:220, 200:360])
    cfg = TrainConfig.from_dict({"height": 64, "width": 64, "batch_size": 1, "num_workers": 0, "val_fraction": 0.0,
                                 "preset": "zippypoint-fp", "max_steps": 1, "log_every": 1, "exclude_dev": False,
                                 "loss": {"saturation_weight": 1.0, "saturation_bound": 0.0}})
    train(cfg, folder, tmp_path / "run", progress=False, device="cpu")
    row = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][0]
    assert row["saturation"] > 0  # bound 0: every non-zero pre-tanh value is penalised


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (160, 320)])
def test_pixel_homographies_are_rigid_rotations_without_stretch(size):
    cfg = HomographyConfig(space="pixel", rotation_deg=60.0, scale_bounds=(0.65, 1.5))
    rng = np.random.default_rng(0)
    angles = []
    for _ in range(200):
        h = sample_pixel_homography(rng, size, cfg)
        assert np.allclose(h[2, :2], 0, atol=1e-12)  # affine: no perspective without jitter
        sv = np.linalg.svd(h[:2, :2] / h[2, 2], compute_uv=False)
        assert sv[0] == pytest.approx(sv[1], rel=1e-9)
        assert 0.65 - 1e-9 <= sv[0] <= 1.5 + 1e-9
        angles.append(abs(math.degrees(math.atan2(h[1, 0], h[0, 0]))))
    angles = np.array(angles)
    assert angles.max() <= 60 + 1e-9
    assert (angles > 30).mean() > 0.35  # uniform: half of the turns exceed 30 degrees


def test_training_homography_in_pixel_space_matches_the_dataset_warp():
    """The normalised matrix the loss sees is the pixel homography conjugated by the pixel<->[-1,1] map."""
    cfg = HomographyConfig(space="pixel")
    w, h = 320, 240
    hn = sample_training_homography(np.random.default_rng(3), (w, h), cfg)
    hp = sample_pixel_homography(np.random.default_rng(3), (w, h), cfg)
    n = np.array([[(w - 1) / 2, 0, (w - 1) / 2], [0, (h - 1) / 2, (h - 1) / 2], [0, 0, 1]])
    assert np.allclose(n @ hn @ np.linalg.inv(n), hp)
    with pytest.raises(ValueError, match="space"):
        HomographyConfig(space="polar")


def test_dev_split_is_fixed_by_file_name_and_holds_about_ten_percent():
    names = [f"photo_{i:04d}.jpg" for i in range(2000)]
    train, dev = split_dev(names)
    assert len(train) + len(dev) == 2000 and not set(map(str, train)) & set(map(str, dev))
    assert abs(len(dev) / 2000 - DEV_PERMILLE / 1000) < 0.03
    # the folder does not matter, only the name
    assert all(is_dev_photo(f"/elsewhere/deep/{p.name}") for p in dev)


def test_training_never_reads_development_photos(tmp_path):
    import cv2

    from zippypoint.train.config import TrainConfig
    from zippypoint.train.trainer import train

    names = [f"img_{i:03d}.png" for i in range(40)]
    dev = [n for n in names if is_dev_photo(n)]
    assert dev, "the fixture needs at least one development photo"
    rng = np.random.default_rng(0)
    for n in names:
        cv2.imwrite(str(tmp_path / n), (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    seen = []
    from zippypoint.train import data as data_module

    original = data_module.HomographyPairDataset.__init__

    def spy(self, paths, *args, **kwargs):
        seen.extend(p.name for p in paths)
        original(self, paths, *args, **kwargs)

    data_module.HomographyPairDataset.__init__ = spy
    try:
        cfg = TrainConfig.from_dict({"height": 64, "width": 64, "batch_size": 2, "num_workers": 0,
                                     "val_fraction": 0.0, "preset": "zippypoint-fp", "max_steps": 1})
        train(cfg, tmp_path, tmp_path / "run", progress=False, device="cpu", dry_run=True)
    finally:
        data_module.HomographyPairDataset.__init__ = original
    assert seen and not set(seen) & set(dev)


def test_training_gray_is_the_deployed_gray():
    """Gray networks train on the luma the deployed pre-processing computes (not the channel mean)."""
    from zippypoint.io import to_float_channels
    from zippypoint.train.data import network_input

    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    bgr[:, :16] = (255, 0, 0)  # saturated blue: the channel mean (0.333) and luma (0.114) differ most here
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)).astype(np.float32) / 255)[None]
    trained = network_input(rgb, 1)[0].numpy()
    deployed = to_float_channels(bgr, 1)
    assert trained.shape == deployed.shape == (1, 24, 32)
    # the deployed luma is rounded to 8 bits: the two agree within half a level
    assert np.abs(trained - deployed).max() <= 0.5 / 255 + 1e-6
    assert abs(float(trained[0, 0, 0]) - 0.114) < 1e-6
    assert network_input(rgb, 3) is rgb
    with pytest.raises(ValueError, match="RGB batch"):
        network_input(rgb[:, :1], 1)
    with pytest.raises(ValueError, match="in_channels"):
        network_input(rgb, 2)
