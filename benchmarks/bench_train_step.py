"""Images/s of a full training step (forward, backward, SGD step; data excluded) per backbone.

For iresnet50, iresnet18 and mobilefacenet at batch 64, in float32 and under bf16 autocast, with
the achieved FLOP/s set beside the matmul peak measured in the same run. FLOPs of a train step
are taken as 3x the forward FLOPs (backward ~ 2x forward), forward FLOPs = 2 x MACs from
``facebench.models.flops``. The loss is a 1000-class softmax over an FC layer on the embedding.

    python benchmarks/bench_train_step.py            # full size (a few minutes on 2 cores)
    python benchmarks/bench_train_step.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource

import torch
from matmul_peak import CLOCKS, measure_peaks
from torch import nn

from facebench.models import build_backbone
from facebench.models.flops import backbone_macs

MODELS = ("iresnet50", "iresnet18", "mobilefacenet")
PRECISIONS = ("float32", "bfloat16", "float16")
NUM_CLASSES = 1000


def train_step_seconds(
    name: str,
    batch: int,
    precision: str,
    steps: int,
    warmup: int,
    channels_last: bool = False,
    device: str = "cpu",
    clock: str = "wall",
) -> list[float]:
    """Seconds of each timed train step of backbone ``name`` (after ``warmup`` untimed steps)."""
    now = CLOCKS[clock]
    torch.manual_seed(0)
    backbone = build_backbone(name).to(device).train()
    head = nn.Linear(512, NUM_CLASSES).to(device)
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.rand(batch, 3, 112, 112, device=device) * 2 - 1
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    device_type = torch.device(device).type
    autocast = (
        contextlib.nullcontext()
        if precision == "float32"
        else torch.autocast(device_type, dtype=getattr(torch, precision))
    )
    # float16 AMP as in training: the loss scaled, the step skipped on overflow
    scaler = torch.amp.GradScaler(device_type, enabled=precision == "float16")
    times = []
    for step in range(warmup + steps):
        start = now()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = nn.functional.cross_entropy(head(backbone(images)), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device_type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(now() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (the best counts)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="backbones to time")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["float32", "bfloat16"],
        choices=PRECISIONS,
        help="float32, bfloat16 (autocast) and/or float16 (autocast + loss scaling)",
    )
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="wall time, or process CPU time (use with --threads 1 under load)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="batch 4, 1 timed step: smoke run")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.warmup = 4, 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()[0]
    peaks = measure_peaks(
        1024 if args.quick else 2048,
        2 if args.quick else 5,
        args.device,
        args.clock,
        tuple(args.precisions),
    )
    print(
        f"threads {torch.get_num_threads()}, batch {args.batch}, channels_last "
        f"{args.channels_last}, {args.clock} clock, load average {load_before:.2f}"
    )
    print("matmul peak: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    print(
        f"{'model':14s} {'precision':9s} {'GMACs':>6s} {'step s':>7s} {'img/s':>7s} "
        f"{'GFLOP/s':>8s} {'of peak':>8s}"
    )
    rows = []
    for name in args.models:
        gmacs = backbone_macs(name).macs / 1e9
        for precision in args.precisions:
            times = train_step_seconds(
                name,
                args.batch,
                precision,
                args.steps,
                args.warmup,
                args.channels_last,
                args.device,
                args.clock,
            )
            step = min(times)  # best of the timed steps, like the matmul peak
            achieved = 3 * 2 * gmacs * 1e9 * args.batch / step
            row = {
                "model": name,
                "precision": precision,
                "gmacs": gmacs,
                "step_s": step,
                "step_s_all": times,
                "images_per_s": args.batch / step,
                "flops_per_s": achieved,
                "fraction_of_peak": achieved / peaks[precision],
            }
            rows.append(row)
            print(
                f"{name:14s} {precision:9s} {gmacs:6.2f} {step:7.2f} {row['images_per_s']:7.1f} "
                f"{achieved / 1e9:8.1f} {row['fraction_of_peak']:8.1%}",
                flush=True,
            )
    by_key = {(r["model"], r["precision"]): r for r in rows}
    for name in args.models:
        if (name, "float32") in by_key and (name, "bfloat16") in by_key:
            ratio = (
                by_key[name, "bfloat16"]["images_per_s"] / by_key[name, "float32"]["images_per_s"]
            )
            print(f"{name}: bf16 / float32 = {ratio:.2f}x (target >= 1.8x)")
    if ("iresnet50", "float32") in by_key:
        fraction = by_key["iresnet50", "float32"]["fraction_of_peak"]
        print(f"iresnet50 float32 at {fraction:.1%} of the float32 matmul peak (target >= 40%)")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"load average after {os.getloadavg()[0]:.2f}, peak RSS {peak_rss:.1f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "peaks": peaks,
                    "batch": args.batch,
                    "threads": torch.get_num_threads(),
                    "channels_last": args.channels_last,
                    "clock": args.clock,
                    "load_average": [load_before, os.getloadavg()[0]],
                    "rows": rows,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
