"""Step time (forward + backward) and peak memory of every registered head, as ratios to CosFace.

512-d embeddings, batch 256, K = 100K and 1M classes at sample ratio r = 1 and 0.1.

- Time: for each (K, r) one process builds every head around ONE shared weight Parameter and
  times them round-robin (the order rotates each round), so load from other work on a shared
  machine hits all heads alike; a head's figure is its fastest step, the ratio to CosFace is
  taken within that process.
- Memory: each (K, r, head) runs one step in its own forked process. On CPU the
  figure is the peak resident set (``ru_maxrss``) minus the resident set once the head and batch
  exist, i.e. what a step adds (logits, the dense weight gradient, the normalized weight copy,
  temporaries); on CUDA it is ``torch.cuda.max_memory_allocated`` over the steps minus the
  memory allocated before them. The parent only forks and collects (no OpenMP pool before a fork).

    python benchmarks/bench_heads.py --quick             # K = 10K and 100K, batch 64
    python benchmarks/bench_heads.py                     # full size: ~12 GB free for K = 1M
    python benchmarks/bench_heads.py --classes 100000    # one class count
    python benchmarks/bench_heads.py --classes 1000000 --heads sphereface2 adaface \
        curricularface magface --rounds 1                # the method.md §7 baselines at 1M
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import time

import torch

from facebench.heads import HEADS, build_head

BCE_HEADS = ("bce_u", "bce_d", "bce_zero")
BASELINES = ("sphereface2", "adaface", "curricularface", "magface")  # method.md §7
REFERENCE_HEAD = "cosface"


def resident_bytes() -> int:
    """Current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_batch(num_classes, dim, batch, device):
    """Embeddings requiring a gradient and random labels."""
    torch.manual_seed(0)
    embeddings = torch.randn(batch, dim, device=device, requires_grad=True)
    return embeddings, torch.randint(0, num_classes, (batch,), device=device)


def one_step(head, embeddings, labels, device) -> float:
    """Seconds of one forward + backward."""
    head.zero_grad(set_to_none=True)
    embeddings.grad = None
    start = time.perf_counter()
    head(embeddings, labels).backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_heads(names, num_classes, ratio, dim, batch, rounds, device) -> dict:
    """Fastest step seconds per head, heads sharing one weight and interleaved round-robin."""
    embeddings, labels = make_batch(num_classes, dim, batch, device)
    heads, shared = {}, None
    for name in names:  # one weight-sized allocation alive at a time besides the shared one
        heads[name] = build_head(name, dim, num_classes, sample_ratio=ratio).to(device)
        shared = heads[name].weight if shared is None else shared
        heads[name].weight = shared
    for head in heads.values():  # warm-up
        one_step(head, embeddings, labels, device)
    best = dict.fromkeys(names, float("inf"))
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            best[name] = min(best[name], one_step(heads[name], embeddings, labels, device))
    return best


def peak_step_memory(name, num_classes, ratio, dim, batch, device) -> int:
    """Bytes one step adds at its peak (see the module docstring)."""
    embeddings, labels = make_batch(num_classes, dim, batch, device)
    head = build_head(name, dim, num_classes, sample_ratio=ratio).to(device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resident_bytes()
    one_step(head, embeddings, labels, device)  # gradients are set to None before each step
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() - base
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base


def _child(connection, threads, function, *args):
    if threads:
        torch.set_num_threads(threads)
    try:
        connection.send(function(*args))
    except Exception as error:  # reported by the parent, which keeps going
        connection.send({"error": f"{type(error).__name__}: {error}"})
    connection.close()


def in_child(threads, function, *args):
    """``function(*args)`` in a forked process; ``{"error": ...}`` if it fails or dies."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, threads, function, *args))
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = {"error": "worker died (out of memory?)"}
    process.join()
    return result


def run(args) -> list[dict]:
    """Every (K, r, head) configuration, with time and memory ratios to CosFace per (K, r)."""
    rows = []
    for num_classes in args.classes:
        for ratio in args.ratios:
            shape = (num_classes, ratio, args.dim, args.batch)
            times = in_child(args.threads, time_heads, args.heads, *shape, args.rounds, args.device)
            group = []
            for name in args.heads:
                row = {"head": name, "classes": num_classes, "ratio": ratio}
                if "error" in times:
                    row["error"] = times["error"]
                else:
                    row["seconds"] = times[name]
                memory = in_child(args.threads, peak_step_memory, name, *shape, args.device)
                if isinstance(memory, dict):
                    row["error"] = memory["error"]
                else:
                    row["peak_bytes"] = memory
                group.append(row)
            reference = next((r for r in group if r["head"] == REFERENCE_HEAD), None)
            for row in group:
                if reference and "error" not in row and "error" not in reference:
                    row["time_vs_cosface"] = row["seconds"] / reference["seconds"]
                    row["memory_vs_cosface"] = row["peak_bytes"] / max(reference["peak_bytes"], 1)
            rows.extend(group)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| K | r | head | step ms | peak extra MiB | time / CosFace | memory / CosFace |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['classes']} | {row['ratio']} | {row['head']} | "
                         f"{row['error']} | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {row['classes']} | {row['ratio']} | {row['head']} | {row['seconds'] * 1e3:.0f} | "
            f"{row['peak_bytes'] / 2**20:.0f} | {row.get('time_vs_cosface', float('nan')):.2f} | "
            f"{row.get('memory_vs_cosface', float('nan')):.2f} |"
        )
    return "\n".join(lines)


def ratio_summary(rows: list[dict], heads, label: str) -> str:
    """Worst and mean step-time ratio to CosFace of ``heads``, against the 1.2 target."""
    ratios = [r["time_vs_cosface"] for r in rows if r["head"] in heads and "time_vs_cosface" in r]
    if not ratios:
        return f"no {label}/CosFace ratio measured"
    verdict = "meets" if max(ratios) <= 1.2 else "misses"
    return (
        f"{label} step time / CosFace: max {max(ratios):.2f}, mean {statistics.mean(ratios):.2f} "
        f"({verdict} the <= 1.2 target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 10K and 100K, batch 64")
    parser.add_argument("--classes", type=int, nargs="+", help="class counts (default 100K 1M)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.1], help="sample ratios")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), help="head names")
    parser.add_argument("--dim", type=int, default=512, help="embedding width")
    parser.add_argument("--batch", type=int, help="batch size (default 256, 64 with --quick)")
    parser.add_argument("--rounds", type=int, default=4, help="timed round-robin rounds")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch default; 1 is steadier on a busy machine)",
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.classes is None:
        args.classes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
    if args.batch is None:
        args.batch = 64 if args.quick else 256
    if REFERENCE_HEAD not in args.heads:
        args.heads = [REFERENCE_HEAD, *args.heads]

    rows = run(args)
    threads = args.threads or torch.get_num_threads()
    print(f"dim {args.dim}, batch {args.batch}, fastest of {args.rounds} interleaved rounds, "
          f"device {args.device}, torch threads {threads}")  # fmt: skip
    print(markdown_table(rows))
    print(ratio_summary(rows, BCE_HEADS, "BCE"))
    print(ratio_summary(rows, BASELINES, "method.md §7 baselines"))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
