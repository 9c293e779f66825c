"""Validation on fixed homographic warps of held-out images: homography accuracy and match precision."""

from __future__ import annotations

import numpy as np
import torch

from zippypoint.eval.protocol import corner_error, estimate_homography
from zippypoint.train.data import HomographyPairDataset, network_input, norm_to_pixel_matrix


class WarpValidator:
    """Holds fixed validation pairs; ``__call__(model)`` returns metrics (model run in eval mode)."""

    def __init__(self, paths, height: int, width: int, pairs: int, seed: int = 1234, max_keypoints: int = 300):
        ds = HomographyPairDataset(paths, height, width, seed=seed, augment=True)
        ds.set_epoch(0)
        n = min(pairs, len(paths))
        self.items = [ds[i] for i in range(n)]
        self.height, self.width = height, width
        self.max_keypoints = max_keypoints

    def __len__(self) -> int:
        return len(self.items)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, batch_size: int = 8) -> dict[str, float]:
        from zippypoint.binary_desc.matcher import match_hamming
        from zippypoint.postprocess import PostprocessConfig, dense_to_features

        if not self.items:
            return {}
        was_training = model.training
        model.eval()
        param = next(model.parameters())
        cfg = PostprocessConfig(max_keypoints=self.max_keypoints)
        n2p = norm_to_pixel_matrix(self.width, self.height)
        errors, precisions, counts = [], [], []
        try:
            for start in range(0, len(self.items), batch_size):
                chunk = self.items[start : start + batch_size]
                images = torch.cat([torch.stack([c["source"] for c in chunk]), torch.stack([c["target"] for c in chunk])])
                images = network_input(images, model.config.in_channels)
                out = {k: v.float().cpu().numpy() for k, v in model(images.to(param.device)).items()}
                for i, item in enumerate(chunk):
                    feats = []
                    for j in (i, i + len(chunk)):
                        feats.append(dense_to_features(out["scores"][j], out["keypoints"][j], out["descriptors"][j],
                                                       image_size=(self.width, self.height), config=cfg))
                    fs, ft = feats
                    h_pix = n2p @ item["homography"].double().numpy() @ np.linalg.inv(n2p)
                    matches = match_hamming(fs["descriptors"], ft["descriptors"], mutual=True, ratio=None)
                    counts.append(len(fs["scores"]))
                    if len(matches) < 4:
                        errors.append(np.inf)
                        precisions.append(0.0)
                        continue
                    ps = fs["keypoints"][matches[:, 0]].astype(np.float64)
                    pt = ft["keypoints"][matches[:, 1]].astype(np.float64)
                    proj = np.c_[ps, np.ones(len(ps))] @ h_pix.T
                    proj = proj[:, :2] / proj[:, 2:]
                    precisions.append(float((np.linalg.norm(proj - pt, axis=1) < 3).mean()))
                    h_est = estimate_homography(ps, pt)
                    errors.append(corner_error(h_pix, h_est, (self.width, self.height)))
        finally:
            model.train(was_training)
        errors = np.asarray(errors)
        return {
            "val_h_acc_1": float((errors <= 1).mean()),
            "val_h_acc_3": float((errors <= 3).mean()),
            "val_h_acc_5": float((errors <= 5).mean()),
            "val_match_precision_3": float(np.mean(precisions)),
            "val_keypoints": float(np.mean(counts)),
        }
