"""Measure this machine's matmul peak: float32 and bfloat16 FLOP/s of large square matmuls.

Other benchmarks import it (``from matmul_peak import measure_peaks``) to set their achieved
FLOP/s beside the peak measured in the same run. Run alone: ``python benchmarks/matmul_peak.py``.
"""

from __future__ import annotations

import argparse
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Wall-clock time, or this process's CPU time (steadier on a loaded machine with one thread).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def matmul_peak(
    dtype: torch.dtype = torch.float32,
    size: int = 2048,
    repeats: int = 5,
    device: str = "cpu",
    min_seconds: float = 0.2,
    clock: str = "wall",
) -> float:
    """Best FLOP/s over ``repeats`` timings of ``size``-square matmuls (2*size^3 FLOPs each)."""
    now = CLOCKS[clock]
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=gen, device=device).to(dtype)
    b = torch.randn(size, size, generator=gen, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: kernel selection, page faults
    _sync(device)
    calls = 1
    while True:  # enough calls per timing that one timing lasts min_seconds
        start = now()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        _sync(device)
        elapsed = now() - start
        if elapsed >= min_seconds:
            break
        calls *= 2
    best = elapsed
    for _ in range(repeats - 1):
        start = now()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, now() - start)
    return 2 * size**3 * calls / best


def measure_peaks(
    size: int = 2048,
    repeats: int = 5,
    device: str = "cpu",
    clock: str = "wall",
    dtypes: tuple[str, ...] = ("float32", "bfloat16"),
) -> dict[str, float]:
    """Peak FLOP/s of matmuls per dtype name: ``{"float32": ..., "bfloat16": ...}``."""
    return {name: matmul_peak(DTYPES[name], size, repeats, device, clock=clock) for name in dtypes}


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="matrix side (default 2048)")
    parser.add_argument("--repeats", type=int, default=5, help="timings; the best counts")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=CLOCKS, default="wall", help="wall or process CPU time")
    parser.add_argument("--quick", action="store_true", help="size 1024, 2 repeats (smoke run)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size, repeats = (1024, 2) if args.quick else (args.size, args.repeats)
    peaks = measure_peaks(size, repeats, args.device, args.clock)
    print(
        f"matmul peak, {size}x{size}, {torch.get_num_threads()} threads, {args.device}, "
        f"{args.clock} clock"
    )
    for name, flops in peaks.items():
        print(f"  {name:9s} {flops / 1e9:9.1f} GFLOP/s")
    print(f"  bfloat16 / float32 = {peaks['bfloat16'] / peaks['float32']:.2f}x")


if __name__ == "__main__":
    main()
