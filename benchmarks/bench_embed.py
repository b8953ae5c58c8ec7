"""Embedding throughput (images/s) beside the FLOPs-bound limit, and faiss gallery build/search.

Per backbone (iresnet50, mobilefacenet): forward passes of uint8 face batches through the
facebench embedders in PyTorch float32, PyTorch bf16 autocast and onnxruntime (float32, the
exported file). The FLOPs-bound limit is the matmul peak measured in the same run divided by
the forward FLOPs of one image (2 x MACs from facebench.models.flops); a flip-summed embedding
costs two forward passes. Then faiss: build and search time (QPS) of an exact (Flat) gallery of
1M x 512 and of an IVF gallery, with IVF's recall@1 against exact search (the rows of
bench_eval.py's search part, so both benchmarks measure one thing one way).

    python benchmarks/bench_embed.py            # full size (1M x 512 gallery; several minutes)
    python benchmarks/bench_embed.py --quick    # smoke run (100K gallery, small batches)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from bench_eval import print_search_rows, search_rows
from matmul_peak import measure_peaks

from facebench.data.align import insightface_sample_faces
from facebench.embed import OnnxEmbedder, TorchEmbedder
from facebench.embed.export import export_onnx
from facebench.models import build_backbone
from facebench.models.flops import backbone_macs

MODELS = ("iresnet50", "mobilefacenet")


def images_per_second(embedder, batch: np.ndarray, repeats: int) -> float:
    """Best-of-``repeats`` images/s of ``embedder.embed(batch)`` after one warm-up call."""
    embedder.embed(batch)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(batch)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def face_batch(size: int) -> np.ndarray:
    """``size`` real aligned faces (insightface's sample photos, shifted copies)."""
    faces = insightface_sample_faces()
    reps = [np.roll(faces, shift, axis=2) for shift in range(-(-size // len(faces)))]
    return np.concatenate(reps)[:size]


def calibrate_batchnorm(module: torch.nn.Module, batch: np.ndarray) -> None:
    """Set BN running statistics from real faces, so a randomly initialised deep net gives
    embeddings of a trained net's scale (iResNet50 at init overflows float32 otherwise)."""
    from facebench.data.images import DEFAULT_CONVENTION
    from facebench.data.model_input import model_input

    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration passes
    module.train()
    with torch.no_grad():
        module(model_input(torch.from_numpy(batch), DEFAULT_CONVENTION))
    module.eval()


def bench_models(batch_size: int, repeats: int, device: str, models=MODELS) -> list[dict]:
    rows = []
    batch = face_batch(batch_size)
    for name in models:
        torch.manual_seed(0)
        module = build_backbone(name, 512)
        calibrate_batchnorm(module, batch)
        flops = backbone_macs(name).flops
        runs = {
            "torch float32": (TorchEmbedder(module, device=device), "float32"),
            "torch bf16": (
                TorchEmbedder(module, device=device, amp_dtype=torch.bfloat16),
                "bfloat16",
            ),
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{name}.onnx")
            check = export_onnx(module, path, batch[:4], name=name, tolerance=1e-2)
            runs["onnxruntime float32"] = (OnnxEmbedder(path), "float32")
            for label, (embedder, precision) in runs.items():
                ips = images_per_second(embedder, batch, repeats)
                rows.append(
                    {
                        "model": name,
                        "runtime": label,
                        "precision": precision,
                        "images_per_s": ips,
                        "flops_per_image": flops,
                        "export_max_abs_diff": check["max_abs_diff"],
                    }
                )
                print(f"  measured {name} {label}: {ips:.1f} images/s", flush=True)
    return rows


def add_limits(rows: list[dict], peaks: dict) -> None:
    """FLOPs-bound images/s (peak / FLOPs per image) and the fraction reached, printed."""
    print(f"{'model':14s} {'runtime':20s} {'images/s':>9s} {'limit':>9s} {'of limit':>8s}")
    for row in rows:
        row["limit_images_per_s"] = peaks[row["precision"]] / row["flops_per_image"]
        row["fraction_of_limit"] = row["images_per_s"] / row["limit_images_per_s"]
        print(
            f"{row['model']:14s} {row['runtime']:20s} {row['images_per_s']:9.1f} "
            f"{row['limit_images_per_s']:9.1f} {row['fraction_of_limit']:8.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--device", default="cpu", help="torch device for the PyTorch runs")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="backbones to time")
    parser.add_argument("--batch", type=int, help="faces per forward (default 32, 8 --quick)")
    parser.add_argument("--gallery", type=int, help="faiss gallery rows (default 1M, 100K --quick)")
    parser.add_argument("--faiss-device", default="cpu", help="faiss on cpu or cuda (GPU build)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    batch, repeats = (8, 2) if args.quick else (32, 3)
    batch = args.batch or batch
    n, probes, nlist = (100_000, 200, 256) if args.quick else (1_000_000, 1000, 1024)
    n = args.gallery or n
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    size, reps = (1024, 2) if args.quick else (2048, 5)
    before = measure_peaks(size, reps, args.device)
    print(f"batch {batch}, forward passes (a flip-summed face costs two)")
    model_rows = bench_models(batch, repeats, args.device, args.models)
    after = measure_peaks(size, reps, args.device)
    peaks = {k: max(before[k], after[k]) for k in before}  # a shared machine depresses either
    print(
        "matmul peak (best of before/after the models): "
        + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items())
    )
    add_limits(model_rows, peaks)
    print(f"faiss gallery {n} x 512 (the evaluation benchmark's search rows)")
    faiss_rows = search_rows(n, 512, probes, nlist=nlist, nprobe=16, device=args.faiss_device)
    print_search_rows(faiss_rows)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peaks": peaks, "models": model_rows, "faiss": faiss_rows}, f, indent=1)


if __name__ == "__main__":
    main()
