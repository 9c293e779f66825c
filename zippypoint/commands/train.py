"""`zippypoint train`: one training stage from a JSON config."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model stage (self-supervised homographic training)",
                       description="Train one stage from a JSON config. Runs under torchrun for "
                                   "DistributedDataParallel (gloo on CPU, nccl on GPU).")
    p.add_argument("--config", required=True, help="stage config JSON (see configs/)")
    p.add_argument("--data", required=True, help="image folder (searched recursively)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics.jsonl, loss_curves.png, final weights")
    p.add_argument("--init", default=None, help="safetensors weights to start from (overrides the config's init)")
    p.add_argument("--hpatches", default=None, help="HPatches-layout folder for periodic validation (optional)")
    p.add_argument("--epochs", type=float, default=None, help="override the config's epochs")
    p.add_argument("--max-steps", type=int, default=None, help="override the config's max_steps")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget; stops cleanly and saves")
    p.add_argument("--batch-size", type=int, default=None, help="override the config's batch size")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--dry-run", action="store_true", help="build everything and run one step; write nothing")
    p.add_argument("--overfit-batch", type=int, default=0, metavar="STEPS",
                   help="train STEPS steps on one fixed batch (the loss must fall)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.set_defaults(func=run)


def load_config(args: argparse.Namespace):
    """The stage config with the command-line overrides; ``UsageError`` naming the fix for a missing file,
    invalid JSON, unknown keys or bad values (before torch is imported or any work starts)."""
    from pathlib import Path

    from zippypoint.cli import UsageError
    from zippypoint.train.config import TrainConfig

    try:
        cfg = TrainConfig.from_file(args.config)
    except FileNotFoundError:
        raise UsageError(f"--config {args.config}: no such file; pass a stage config JSON such as "
                         "configs/stage1_fp.json (see configs/)") from None
    except ValueError as exc:
        raise UsageError(f"--config {args.config}: {exc}; fix the file (see configs/ for valid configs)") from None
    overrides = {k: v for k, v in {"init": args.init, "epochs": args.epochs, "max_steps": args.max_steps,
                                   "max_minutes": args.max_minutes,
                                   "batch_size": args.batch_size}.items() if v is not None}
    try:
        cfg = cfg.replace(**overrides) if overrides else cfg
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{exc}; check the overriding options") from None
    if not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder; pass a folder of training photos")
    if cfg.init is not None and not Path(cfg.init).is_file():
        raise UsageError(f"init weights not found: {cfg.init}; pass --init FILE.safetensors or fix the config")
    return cfg


def run(args: argparse.Namespace) -> int:
    import json

    cfg = load_config(args)

    import torch

    from zippypoint.train.trainer import TrainingAborted, TrainingStopped, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        summary = train(cfg, args.data, args.out, resume=not args.no_resume, dry_run=args.dry_run,
                        overfit_batch=args.overfit_batch, device=args.device, hpatches=args.hpatches)
    except TrainingAborted as exc:
        import sys

        from zippypoint.cli import EXIT_FAILED, error_line

        print(f"zippypoint train: error: training stopped: {error_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except TrainingStopped as exc:
        import sys

        print(f"zippypoint train: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signum  # the shell's convention for a process ended by that signal
    print(json.dumps(summary, indent=2))
    return 0
