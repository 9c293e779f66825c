"""The training loop: staged, resumable, seedable, single-process or DistributedDataParallel."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zippypoint.train.config import TrainConfig
from zippypoint.train.network_teacher import NETWORK_TEACHERS, NetworkTeacher, network_distillation_losses

CHECKPOINT = "checkpoint.pt"
FINAL = "final.safetensors"
log = logging.getLogger(__name__)
RUN_LENGTH_KEYS = ("epochs", "max_steps", "max_minutes")  # may change between resumes (to extend a run)
DESC_HEAD = ("desc_conv1", "desc_conv2", "desc_conv3", "desc_out")


class TrainingAborted(RuntimeError):
    """Training stopped because the loss stayed non-finite."""


class TrainingStopped(RuntimeError):
    """Training stopped on SIGTERM or SIGINT after its current step, with the checkpoint saved and the DataLoader
    workers shut down; the same command resumes. ``signum`` is the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


@contextlib.contextmanager
def stop_requests(enabled: bool = True):
    """While active, the first SIGTERM or SIGINT is recorded in the yielded list instead of ending the process (the
    loop finishes its step, saves and stops); a second one acts as it did before. Off the main thread or when not
    ``enabled`` (several DDP ranks must stop at the same step) the list stays empty and nothing is installed."""
    requested: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {}

    def handler(signum, _frame):
        requested.append(signum)
        signal.signal(signum, previous[signum])

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistInfo:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    return info


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig):
    from zippypoint.model.registry import create_model, load_weights

    model = create_model(cfg.preset)
    if cfg.init and cfg.init_partial:
        load_fitting(model, cfg.init)
    elif cfg.init:
        load_weights(model, cfg.init)
    return model


def load_fitting(model, path) -> tuple[list[str], list[str]]:
    """Load the tensors of ``path`` whose names and shapes fit ``model`` (weights of another topology);
    returns (loaded, left random) names and logs both counts. Refuses a file of which nothing fits."""
    from zippypoint.model.weights import WeightsError, read_state_dict

    state, _ = read_state_dict(path)
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fit:
        raise WeightsError(f"no tensor of {path} fits {type(model).__name__} (names or shapes all differ)")
    model.load_state_dict(fit, strict=False)
    rest = sorted(set(own) - set(fit))
    log.info("init %s: %d tensors loaded, %d left random (%s)", path, len(fit), len(rest),
             ", ".join(sorted({k.split(".")[0] for k in rest})))
    return sorted(fit), rest


def trainable_parameters(model, cfg: TrainConfig):
    if cfg.stage == "descriptor":
        for name, p in model.named_parameters():
            p.requires_grad_(name.split(".")[0] in DESC_HEAD)
    return [p for p in model.parameters() if p.requires_grad]


def set_train_mode(model, cfg: TrainConfig) -> None:
    """Training mode; in the descriptor stage the frozen backbone stays in eval mode (BN stats fixed)."""
    model.train()
    if cfg.stage == "descriptor":
        for name, child in model.named_children():
            if name not in DESC_HEAD:
                child.eval()


def build_annealing(model, cfg: TrainConfig):
    if cfg.stage != "quantize" or not cfg.ana:
        return None
    from zippypoint.model.quant_groups import quantizer_groups
    from zippypoint.quant.annealing import AnnealingConfig, AnnealingController

    ana_cfg = AnnealingConfig.from_dict(dict(cfg.ana))
    groups = quantizer_groups(model, cfg.ana_targets)
    for _, members in groups:
        for m in members:
            m.ana_enabled = True
            m.ana_noise = ana_cfg.noise
            m.ana_strategy = ana_cfg.strategy
    return AnnealingController([members for _, members in groups], ana_cfg)


def lr_at(cfg: TrainConfig, progress: float) -> float:
    halvings = sum(progress >= f for f in cfg.lr_halving)
    return cfg.lr * 0.5**halvings


def describe_device(dev: torch.device, world_size: int = 1) -> str:
    """What trained a run, for its summary and the model card: ``cuda: <GPU name>`` or ``cpu: <CPU model>``."""
    if dev.type == "cuda":
        name = f"cuda: {torch.cuda.get_device_name(dev)}"
    else:
        from zippypoint.machine import cpu_model

        name = f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"
    return f"{name} x{world_size}" if world_size > 1 else name


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def plot_curves(metrics_path: Path, out_png: Path) -> None:
    from zippypoint.viz import agg_figure

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    if not train:
        return
    keys = ["total", "location", "descriptor", "score", "consistency"]
    fig = agg_figure(12 if val else 7, 4)
    axes = fig.subplots(1, 2 if val else 1, squeeze=False)
    ax = axes[0, 0]
    steps = [r["step"] for r in train]
    for k in keys:
        ax.plot(steps, [r[k] for r in train], label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training losses")
    ax.grid(alpha=0.3)
    ax.legend()
    if val:
        ax = axes[0, 1]
        vsteps = [r["step"] for r in val]
        for k in ("val_h_acc_3", "val_match_precision_3"):
            ax.plot(vsteps, [r.get(k, math.nan) for r in val], marker="o", label=k)
        ax.set_ylim(0, 1)
        ax.set_xlabel("step")
        ax.set_title("validation (held-out warps)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)


def training_images(cfg: TrainConfig, data: str | Path) -> tuple[list[Path], list[Path]]:
    """The photos of ``data`` a run of ``cfg`` trains on, and those it validates on (the development split left
    out when ``cfg.exclude_dev``; a fixed validation share by ``cfg.seed``)."""
    from zippypoint.io import list_images
    from zippypoint.train.data import split_images

    paths = list_images(data)
    if not paths:
        raise ValueError(f"no images found under {data}")
    if cfg.exclude_dev:
        from zippypoint.train.split import split_dev

        paths = split_dev(paths)[0] or paths
    train_paths, val_paths = split_images(paths, cfg.val_fraction, cfg.seed)
    return (train_paths or val_paths), val_paths


def steps_per_epoch(images: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps in one epoch over ``images`` photos split across ``world`` processes (at least one)."""
    return max((images // world) // batch_size, 1)


def train(cfg: TrainConfig, data: str | Path, out: str | Path, *, resume: bool = True, dry_run: bool = False,
          overfit_batch: int = 0, device: str | None = None, progress: bool = True,
          hpatches: str | Path | None = None) -> dict:
    """Run one training stage. Returns the final metrics dict.

    ``overfit_batch > 0``: train that many steps on one fixed batch (a debugging aid: the loss must fall).
    ``dry_run``: build everything, run one step, write nothing.
    """
    from tqdm import tqdm

    from zippypoint.model.weights import save_weights
    from zippypoint.quant.layers import clip_latent_weights
    from zippypoint.train.data import HomographyPairDataset, network_input, worker_init
    from zippypoint.train.losses import homographic_losses
    from zippypoint.train.sampler import EpochShardSampler
    from zippypoint.train.validation import WarpValidator

    dist_info = setup_distributed()
    seed_everything(cfg.seed + dist_info.rank)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out)

    train_paths, val_paths = training_images(cfg, data)
    dataset = HomographyPairDataset(train_paths, cfg.height, cfg.width, seed=cfg.seed,
                                    homography=cfg.homography, photometric=cfg.photometric)
    sampler = EpochShardSampler(len(dataset), seed=cfg.seed, rank=dist_info.rank, world=dist_info.world)
    epoch_steps = steps_per_epoch(len(dataset), cfg.batch_size, dist_info.world)
    total_steps = int(math.ceil(cfg.epochs * epoch_steps))
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    if overfit_batch:
        total_steps = overfit_batch
    if dry_run:
        total_steps = 1

    model = build_model(cfg).to(dev)
    params = trainable_parameters(model, cfg)
    controller = build_annealing(model, cfg)
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    teacher = network_teacher = None
    stem_out: list[torch.Tensor] = []
    if cfg.teacher in NETWORK_TEACHERS:
        network_teacher = NetworkTeacher(cfg.teacher, threads=torch.get_num_threads()).load().to(dev)
        lean_stem = getattr(model, "down1", True) is None and model.config.widths[1] == network_teacher.stem_channels
        if lean_stem and cfg.loss.teacher_feature_weight > 0:
            model.conv_in.register_forward_hook(lambda _m, _i, out: stem_out.append(out))
    elif cfg.teacher:
        from zippypoint.train.distill import AlikedTeacher

        teacher = AlikedTeacher(cfg.teacher).load().to(dev)
    offset_logits: list[torch.Tensor] = []
    if cfg.loss.saturation_weight > 0 and hasattr(model, "loc_out"):
        # the location head's pre-tanh values, for the saturation penalty
        model.loc_out.register_forward_hook(lambda _m, _i, out: offset_logits.append(out))
    distill_gen = torch.Generator().manual_seed(cfg.seed + 1000 * dist_info.rank)

    step, epoch, skip = 0, 0, 0
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.exists() and not dry_run:
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        changed = sorted(k for k in set(state["config"]) | set(cfg.to_dict())
                         if k not in RUN_LENGTH_KEYS and state["config"].get(k) != cfg.to_dict().get(k))
        if changed:
            raise ValueError(f"{ckpt_path} was written with a different config ({', '.join(changed)}); "
                             "use a new --out or --no-resume")
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        if controller is not None and state.get("annealing") is not None:
            controller.load_state_dict(state["annealing"])
        step, epoch, skip = int(state["step"]), int(state["epoch"]), int(state["skip"])
        torch.set_rng_state(state["torch_rng"])

    net = model
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dist_info.local_rank] if dev.type == "cuda" else None)

    validator = None
    writing = dist_info.main and not dry_run
    if writing:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        validator = WarpValidator(val_paths, cfg.height, cfg.width, cfg.val_pairs, seed=cfg.seed + 7)
    metrics_path = out / "metrics.jsonl"

    def log(row: dict) -> None:
        if writing:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def save_checkpoint() -> None:
        if not writing:
            return
        _atomic_torch_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "annealing": controller.state_dict() if controller is not None else None,
            "step": step, "epoch": epoch, "skip": skip, "config": cfg.to_dict(),
            "torch_rng": torch.get_rng_state(), "elapsed_s": elapsed(),
        }, ckpt_path)

    def validate() -> dict:
        if validator is None or (not len(validator) and not hpatches):
            return {}
        res = {"kind": "val", "step": step, **(validator(model) if len(validator) else {})}
        if hpatches:
            res.update(_hpatches_metrics(model, hpatches))
        log(res)
        plot_curves(metrics_path, out / "loss_curves.png")
        return res

    elapsed_before = 0.0
    if resume and ckpt_path.exists() and not dry_run:
        elapsed_before = float(state.get("elapsed_s", 0.0))

    def elapsed() -> float:
        return elapsed_before + time.time() - t_start

    def progress_fraction() -> float:
        frac = step / max(total_steps, 1)
        if cfg.max_minutes:
            frac = max(frac, elapsed() / (60.0 * cfg.max_minutes))
        return frac

    def out_of_time() -> bool:
        return bool(cfg.max_minutes) and elapsed() >= 60.0 * cfg.max_minutes

    fixed_batch = None
    bad_steps = 0
    last_val: dict = {}
    t_start = time.time()
    bar = tqdm(total=total_steps, initial=step, disable=not (progress and dist_info.main), desc=cfg.name,
               dynamic_ncols=True)
    set_train_mode(model, cfg)
    with stop_requests(dist_info.world == 1 and not dry_run) as stop:
        while step < total_steps:
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch, skip)
            loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                                                 num_workers=cfg.num_workers, worker_init_fn=worker_init,
                                                 multiprocessing_context="spawn" if cfg.num_workers > 0 else None)
            t_wait = time.time()
            for batch in loader:
                t_data = time.time() - t_wait
                if overfit_batch:
                    fixed_batch = fixed_batch or batch
                    batch = fixed_batch
                if controller is not None:
                    # annealing time in epochs of the planned run (a max_steps cap shortens it; follows the wall-time
                    # budget when one is set)
                    controller.step(progress_fraction() * total_steps / epoch_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(cfg, progress_fraction())
                source, target = batch["source"].to(dev), batch["target"].to(dev)
                source, target = (network_input(x, model.config.in_channels) for x in (source, target))
                t_compute = time.time()
                offset_logits.clear()
                stem_out.clear()
                outputs = net(torch.cat([source, target]))
                if offset_logits:
                    outputs = {**outputs, "offset_logits": offset_logits[-1]}
                b = source.shape[0]
                out_s = {k: v[:b] for k, v in outputs.items()}
                out_t = {k: v[b:] for k, v in outputs.items()}
                homography = batch["homography"].to(dev)
                losses = homographic_losses(out_s, out_t, homography, cfg.loss, (cfg.width, cfg.height))
                losses["total"] = cfg.loss.homographic_weight * losses["total"]
                t_teacher = 0.0
                if network_teacher is not None:
                    t0 = time.time()
                    rgb = torch.cat([batch["source"], batch["target"]]).to(dev)
                    stem = (stem_out[-1], network_teacher.stem(rgb)) if stem_out else None
                    teach = network_distillation_losses(outputs, network_teacher.dense(rgb), cfg.loss,
                                                        (cfg.width, cfg.height), stem=stem)
                    t_teacher = time.time() - t0
                    losses = {**losses, **teach, "total": losses["total"] + teach["distill"]}
                if teacher is not None:
                    from zippypoint.train.distill import distillation_losses

                    t0 = time.time()
                    teach = distillation_losses(out_s, out_t, homography, teacher, batch["target"].to(dev), cfg.loss,
                                                (cfg.width, cfg.height), generator=distill_gen)
                    t_teacher = time.time() - t0  # teacher forward + its losses (their backward is counted below)
                    losses = {**losses, **teach, "total": losses["total"] + teach["distill"]}
                loss = losses["total"]
                optimizer.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):
                    bad_steps += 1
                    if bad_steps >= cfg.nan_patience:
                        save_checkpoint()
                        raise TrainingAborted(f"loss was non-finite for {bad_steps} consecutive steps (step {step}); "
                                              f"last good checkpoint kept in {ckpt_path}")
                    continue
                bad_steps = 0
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                clip_latent_weights(model)
                losses = {**losses, "time_data_s": torch.tensor(t_data), "time_teacher_s": torch.tensor(t_teacher),
                          "time_step_s": torch.tensor(time.time() - t_compute)}
                step += 1
                skip += b
                bar.update(1)
                if step % cfg.log_every == 0 or step == total_steps:
                    row = {"kind": "train", "step": step, "epoch": step / epoch_steps, "lr": optimizer.param_groups[0]["lr"],
                           "time_s": round(elapsed(), 1),
                           **{k: float(v.detach()) for k, v in losses.items()}}
                    if controller is not None:
                        row["ana_scale_first"] = float(controller.groups[0][0].ana_scale)
                        row["ana_scale_last"] = float(controller.groups[-1][0].ana_scale)
                    log(row)
                    bar.set_postfix(loss=f"{row['total']:.3f}", hamming_hit=f"{row['hamming_hit_rate']:.2f}")
                if step % cfg.checkpoint_every == 0:
                    save_checkpoint()
                if cfg.snapshot_every and step % cfg.snapshot_every == 0 and writing:
                    save_weights(model, out / f"step_{step:06d}.safetensors",
                                 {"preset": cfg.preset, "stage": cfg.stage, "steps": str(step)})
                if step % cfg.val_every == 0:
                    last_val = validate()
                    set_train_mode(model, cfg)
                if out_of_time():
                    total_steps = step
                if step >= total_steps or stop:
                    break
                t_wait = time.time()
            else:
                epoch += 1
                skip = 0
                continue
            if step >= total_steps or stop:
                break
    bar.close()
    if stop:  # the loader's iterator is gone with its loop, and its workers with it
        save_checkpoint()
        raise TrainingStopped(f"{signal.Signals(stop[0]).name} after step {step}: checkpoint saved in {ckpt_path}; "
                              "the same command resumes", stop[0])
    if dist_info.world > 1:
        # BatchNorm running statistics update locally on each rank's last batch: adopt rank 0's
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    if controller is not None:
        controller.step(float("inf"))  # the end of every window: hard quantisers
    if writing:
        save_checkpoint()
        final = validate() or last_val
        if metrics_path.exists():
            plot_curves(metrics_path, out / "loss_curves.png")
        sha = save_weights(model, out / FINAL, {"preset": cfg.preset, "stage": cfg.stage, "steps": str(step),
                                                "config": json.dumps(cfg.to_dict())})
        summary = {"steps": step, "wall_time_s": round(elapsed(), 1), "sha256": sha,
                   "weights": str(out / FINAL), **{k: v for k, v in final.items() if k.startswith("val") or k.startswith("hp")}}
        summary["weights_digest"] = state_digest(model)
        summary["device"] = describe_device(dev, dist_info.world)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    return {"steps": step, "weights_digest": state_digest(model)}


def state_digest(model) -> str:
    """sha256 over the model's state dict (names and bytes): equal digests = identical weights."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _hpatches_metrics(model, root) -> dict:
    """HPatches-layout metrics at 320x240/top-300 through the evaluation package, when available."""
    from zippypoint.eval.quick import evaluate_model_quick

    return {f"hp_{k}": v for k, v in evaluate_model_quick(model, root).items()}
