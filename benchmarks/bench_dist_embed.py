"""Distributed extraction speed-up: `facebench embed` on 1 process x 1 thread against
`torchrun --nproc_per_node=2 -m facebench embed` (2 processes x 1 thread), same pack, same model.

Each configuration embeds the full pack (N faces) and a short one (one batch per rank); the
marginal rate (N - M) / (t_N - t_M) removes the start-up (imports, model load, torchrun's
rendezvous), which a long extraction pays once. Both rates and their ratios are printed; the
2-process file must equal the 1-process one (checked). Run it on an idle machine with at least
2 cores; the faces are real aligned photos (insightface's samples, shifted copies) in a pack.

    python benchmarks/bench_dist_embed.py            # mobilefacenet, 4096 faces (~3 min)
    python benchmarks/bench_dist_embed.py --quick    # 256 faces (smoke run)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from bench_embed import calibrate_batchnorm, face_batch

from facebench.data.images import DEFAULT_CONVENTION, encode_image
from facebench.data.packs import write_face_pack
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact


def write_inputs(folder: str, backbone: str, count: int, short: int) -> None:
    """``model.pt`` (BatchNorm calibrated on the faces), ``pack`` (``count`` faces) and
    ``short`` (its first ``short``)."""
    torch.manual_seed(0)
    module = build_backbone(backbone, 512)
    faces = face_batch(count)
    calibrate_batchnorm(module, faces[:32])
    save_model_artifact(f"{folder}/model.pt", module, backbone, {}, DEFAULT_CONVENTION)
    encoded = [(i // 64, encode_image(face, ".jpg")) for i, face in enumerate(faces)]
    write_face_pack(f"{folder}/pack", encoded, (112, 112))
    write_face_pack(f"{folder}/short", encoded[:short], (112, 112))


def timed_embed(folder: str, processes: int, pack: str, batch: int) -> tuple[float, str]:
    """Wall seconds of one `facebench embed` of ``pack`` (1 process, or torchrun of
    ``processes``), each process on one thread; and the output path."""
    out = f"{folder}/{pack}_{processes}.npy"
    cmd = [sys.executable]
    if processes > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd += ["-m", "facebench", "embed", "--model", f"{folder}/model.pt", "--pack"]
    cmd += [f"{folder}/{pack}", "--out", out, "--batch-size", str(batch), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 faces (smoke run)")
    parser.add_argument("--backbone", default="mobilefacenet")
    parser.add_argument("--images", type=int, help="faces in the pack (default 4096)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    count = args.images or (256 if args.quick else 4096)
    short = 2 * args.batch_size  # one batch per rank of the 2-process run
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{args.backbone}, {count} faces (short run {short}), batch {args.batch_size}, flip-sum")
    with tempfile.TemporaryDirectory(prefix="bench_dist_embed_") as folder:
        write_inputs(folder, args.backbone, count, short)
        rows = {}
        for processes in (1, 2):
            full, out = timed_embed(folder, processes, "pack", args.batch_size)
            start_up, _ = timed_embed(folder, processes, "short", args.batch_size)
            rows[processes] = (full, start_up, out)
        equal = np.array_equal(np.load(rows[1][2]), np.load(rows[2][2]))
    print(f"{'processes x threads':<20}{'command s':>10}{'images/s':>10}{'marginal/s':>12}")
    rates = {}
    for processes, (full, start_up, _) in rows.items():
        marginal = (count - short) / max(full - start_up, 1e-9)
        rates[processes] = (count / full, marginal)
        print(f"{processes} x 1{'':<15}{full:>10.1f}{count / full:>10.1f}{marginal:>12.1f}")
    whole, marginal = (rates[2][i] / rates[1][i] for i in (0, 1))
    print(f"2 processes / 1 process: {whole:.2f}x whole command, {marginal:.2f}x marginal")
    print(f"2-process embeddings equal the 1-process ones: {equal}")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
