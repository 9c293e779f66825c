"""Forward + backward time of the ANA grid quantiser against a hard fake-quant with STE.

    python benchmarks/ana_speed.py --shape 8 32 240 320 --sigmas 0.5 1 4 --repeats 3

Prints a Markdown table (best seconds per forward + backward) and, with ``--json PATH``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from zippypoint.quant.ana import ana_grid_quantize
from zippypoint.quant.ana_grid import window_width


def _time(fn, x: torch.Tensor, repeats: int, clock) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up allocator and kernels
        xr = x.detach().requires_grad_()
        t0 = clock()
        y = fn(xr)
        (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(clock() - t0)
    return min(times[1:])  # the machine is shared: the fastest run is the least disturbed one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[8, 32, 240, 320])
    parser.add_argument(
        "--sigmas", type=float, nargs="+", default=[0.5, 1.0, 4.0], help="noise scale in steps"
    )
    parser.add_argument("--noises", nargs="+", default=["uniform", "triangular", "normal", "logistic"])
    parser.add_argument("--strategies", nargs="+", default=["expectation", "mode"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: process CPU time, steadier than wall time on a shared machine (use with --threads 1)",
    )
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    qmax_range, qmin, qmax = 6.0, -128, 127
    step = 2 * qmax_range / 255
    gen = torch.Generator(device=args.device).manual_seed(0)
    x = torch.randn(args.shape, generator=gen, device=args.device) * 2.0

    def ste(xr):  # hard fake-quant, gradient 1 inside the range
        q = (torch.floor(xr / step - 0.5) + 1).clamp(qmin, qmax) * step
        inside = (xr >= qmin * step) & (xr <= qmax * step)
        return torch.where(inside, xr + (q - xr).detach(), q.detach())

    def fused(xr):
        return torch.fake_quantize_per_tensor_affine(xr, step, 0, qmin, qmax)

    rows = [
        (
            "hard fake-quant, STE (torch.fake_quantize_per_tensor_affine)",
            "-",
            "-",
            "-",
            _time(fused, x, args.repeats, clock),
        )
    ]
    rows.append(
        ("hard fake-quant, STE (elementwise expression)", "-", "-", "-", _time(ste, x, args.repeats, clock))
    )
    for noise in args.noises:
        for sigma in args.sigmas:
            bounded = noise in ("uniform", "triangular")
            width = "closed form" if bounded else str(window_width(noise, sigma, qmax - qmin))
            for strategy in args.strategies:

                def ana(xr, noise=noise, sigma=sigma, strategy=strategy):
                    return ana_grid_quantize(
                        xr, step, qmin, qmax, noise=noise, strategy=strategy, mu=0.0, scale=sigma * step
                    )

                rows.append(
                    (f"ANA {noise}", strategy, f"{sigma:g}", width, _time(ana, x, args.repeats, clock))
                )

    base = rows[0][-1]
    print(
        f"shape {tuple(args.shape)}, device {args.device}, threads {torch.get_num_threads()}, "
        f"{args.clock} clock, best of {args.repeats}\n"
    )
    print("| quantiser | strategy | s (steps) | window | fwd+bwd (s) | vs fused STE |")
    print("|---|---|---|---|---|---|")
    for name, strategy, sigma, width, sec in rows:
        print(f"| {name} | {strategy} | {sigma} | {width} | {sec:.3f} | {sec / base:.1f}x |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                [
                    dict(zip(("quantiser", "strategy", "sigma_steps", "window", "seconds"), r, strict=True))
                    for r in rows
                ],
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
