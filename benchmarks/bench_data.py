#!/usr/bin/env python
"""Data benchmark: pack read + decode + collate per image vs bare ``cv2.imdecode``, and the
device-side conversion of a uint8 batch to model input.

Both sides decode the same JPEG bytes in the same random key order in the same run. The pack
side is what the trainer's DataLoader runs for a batch: ``PackDataset.__getitems__`` (.idx
offset into the memory-mapped .rec, RecordIO framing and header read in place, decode to RGB,
each image copied into its row of one uint8 NHWC array) and ``collate_images``. The sides
alternate batch by batch and are timed in process CPU time, each batch's best of several rounds,
so other processes' load hurts them alike. Prints a table and the ratio (target >= 0.9). Then
times ``model_input`` (uint8 NHWC -> normalized float NCHW) once per batch on ``--device``, in
both layouts.

    python benchmarks/bench_data.py --quick          # ~600 images
    python benchmarks/bench_data.py --pack DIR       # any InsightFace pack
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import cv2
import numpy as np
import torch

from facebench.data.collate import collate_images
from facebench.data.images import InputConvention
from facebench.data.model_input import model_input
from facebench.data.packs import PackDataset
from facebench.data.synth.dataset import SynthConfig, write_synthetic_dataset


def make_pack(directory: str, identities: int, images_per_identity: int) -> str:
    """A synthetic 112x112 JPEG pack to read from."""
    cfg = SynthConfig(
        identities=identities,
        images_per_identity=images_per_identity,
        test_images_per_identity=0,
        val_identities=2,
        val_images_per_identity=2,
        pairs=20,
    )
    write_synthetic_dataset(directory, cfg)
    return directory


def interleaved_seconds(sides: dict, batches: list, rounds: int) -> tuple[dict, dict]:
    """CPU seconds per side (each batch's best time over the rounds, summed) and page faults
    per batch. The sides alternate batch by batch, so load from other processes hits them
    alike.

    ``sides`` maps a name to ``(function of one batch, that side's items per batch)``."""
    best = {name: [float("inf")] * len(batches) for name in sides}
    faults = dict.fromkeys(sides, 0)
    clock = time.process_time
    for _ in range(rounds):
        for b in range(len(batches)):
            for name, (fn, items) in sides.items():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = clock()
                fn(items[b])
                best[name][b] = min(best[name][b], clock() - start)
                faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    per_batch = {name: count / (rounds * len(batches)) for name, count in faults.items()}
    return {name: sum(times) for name, times in best.items()}, per_batch


def conversion_seconds(batch, convention, channels_last: bool, repeats: int) -> float:
    """Best seconds of one ``model_input`` call on ``batch``'s device: process CPU time on the
    CPU (one thread), wall time after synchronizing on an accelerator."""
    cpu = batch.device.type == "cpu"
    clock = time.process_time if cpu else time.perf_counter
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        if not cpu:
            torch.cuda.synchronize(batch.device)
        start = clock()
        model_input(batch, convention, channels_last=channels_last)
        if not cpu:
            torch.cuda.synchronize(batch.device)
        best = min(best, clock() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", help="pack directory or .rec (default: a synthetic one)")
    parser.add_argument("--quick", action="store_true", help="small size (~600 images)")
    parser.add_argument("--images", type=int, default=0, help="images to read (default: all)")
    parser.add_argument("--batch", type=int, default=128, help="images per collated batch")
    parser.add_argument("--rounds", type=int, default=11, help="rounds (best per batch is kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random key order")
    parser.add_argument("--device", default="cpu", help="device of the batch conversion")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)  # one core per side, like one DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        size = (30, 20) if args.quick else (150, 20)
        path = args.pack or make_pack(os.path.join(tmp, "pack"), *size)
        dataset = PackDataset(path)
        pack = dataset.pack
        count = min(args.images or len(pack), len(pack))
        order = np.random.default_rng(args.seed).permutation(len(pack))[:count].tolist()
        batches = [order[i : i + args.batch] for i in range(0, count, args.batch)]
        payloads = {i: pack.read_encoded(int(pack.image_keys[i]))[0] for i in order}
        buffers = [[np.frombuffer(payloads[i], dtype=np.uint8) for i in b] for b in batches]

        def bare(bufs):
            for buf in bufs:  # each image dropped: decoding only, no memory that grows
                cv2.imdecode(buf, cv2.IMREAD_COLOR)

        def read_only(indices):
            return [pack.reader.read(int(pack.image_keys[i])) for i in indices]

        def read_decode(indices):
            return [pack.read_sample(int(pack.image_keys[i])) for i in indices]

        def read_decode_collate(indices):
            return collate_images(dataset.__getitems__(indices))

        sides = {"cv2.imdecode (bytes in memory)": (bare, buffers)}
        sides["pack: read record only"] = (read_only, batches)
        sides["pack: read+decode+RGB (read_sample)"] = (read_decode, batches)
        sides["pack: read+decode+RGB+collate (uint8)"] = (read_decode_collate, batches)
        seconds, faults = interleaved_seconds(sides, batches, args.rounds)
        best = {name: count / sec for name, sec in seconds.items()}
        example = read_decode_collate(batches[0])[0].to(args.device)
    baseline = best["cv2.imdecode (bytes in memory)"]
    print(
        f"pack: {path if args.pack else 'synthetic'}, {count} images in random key order, "
        f"batches of {args.batch}, best of {args.rounds} rounds per batch, one thread"
    )
    print(f"{'path':<40} {'images/s':>10} {'ratio':>7} {'page faults/batch':>18}")
    for name, rate in best.items():
        print(f"{name:<40} {rate:>10.0f} {rate / baseline:>7.2f} {faults[name]:>18.0f}")
    ratio = best["pack: read+decode+RGB+collate (uint8)"] / baseline
    print(f"ratio (pack read + decode + collate / bare imdecode): {ratio:.2f} (target >= 0.9)")

    convention = InputConvention(size=tuple(example.shape[1:3]))
    n = len(example)
    print(
        f"model_input on {args.device}: uint8 {tuple(example.shape)} -> float32 NCHW, "
        f"best of {args.rounds}"
    )
    for channels_last in (False, True):
        sec = conversion_seconds(example, convention, channels_last, args.rounds)
        layout = "channels_last" if channels_last else "NCHW-contiguous"
        print(
            f"  {layout:<16} {sec * 1e3:8.3f} ms per batch, {sec / n * 1e6:6.2f} us per image "
            f"({sec / n * baseline:.2f} of one bare imdecode)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
