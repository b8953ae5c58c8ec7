#!/usr/bin/env python
"""Data benchmark: random-access read + decode + transform from a pack vs bare ``cv2.imdecode``.

Both sides decode the same JPEG bytes in the same random key order in the same run; the pack side
goes through ``PackDataset`` (pread by .idx offset, RecordIO framing, header, decode, BGR->RGB,
normalize to a CHW float tensor). The sides alternate image by image and are timed in process
CPU time (best of several rounds), so other processes' load hurts both alike. Prints a table
and the ratio (target >= 0.8).

    python benchmarks/bench_data.py --quick          # ~600 images
    python benchmarks/bench_data.py --pack DIR       # any InsightFace pack
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import cv2
import numpy as np

from facebench.data.packs import PackDataset
from facebench.data.synthetic import SynthConfig, write_synthetic_dataset


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


def interleaved_seconds(sides: dict, count: int, rounds: int) -> dict[str, float]:
    """Best-round CPU seconds per side; sides alternate image by image so load hits all alike."""
    totals = {name: [0.0] * rounds for name in sides}
    clock = time.process_time
    for r in range(rounds):
        for i in range(count):
            for name, (fn, items) in sides.items():
                start = clock()
                fn(items[i])
                totals[name][r] += clock() - start
    return {name: min(t) for name, t in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", help="pack directory or .rec (default: a synthetic one)")
    parser.add_argument("--quick", action="store_true", help="small size (~600 images)")
    parser.add_argument("--images", type=int, default=0, help="images to read (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (best one is kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random key order")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        size = (30, 20) if args.quick else (150, 20)
        path = args.pack or make_pack(os.path.join(tmp, "pack"), *size)
        dataset = PackDataset(path)
        pack = dataset.pack
        count = min(args.images or len(pack), len(pack))
        order = np.random.default_rng(args.seed).permutation(len(pack))[:count].tolist()
        payloads = [pack.read_encoded(int(pack.image_keys[i]))[0] for i in order]
        buffers = [np.frombuffer(p, dtype=np.uint8) for p in payloads]

        def bare(buf):
            return cv2.imdecode(buf, cv2.IMREAD_COLOR)

        def read_only(i):
            return pack.reader.read(int(pack.image_keys[i]))

        def read_decode(i):
            return pack.read_sample(int(pack.image_keys[i]))

        sides = {"cv2.imdecode (bytes in memory)": (bare, buffers)}
        sides["pack: read record only"] = (read_only, order)
        sides["pack: read+decode+RGB (read_sample)"] = (read_decode, order)
        sides["pack: read+decode+RGB+normalize"] = (dataset.__getitem__, order)
        seconds = interleaved_seconds(sides, count, args.rounds)
        best = {name: count / sec for name, sec in seconds.items()}
    baseline = best["cv2.imdecode (bytes in memory)"]
    print(
        f"pack: {path if args.pack else 'synthetic'}, {count} images in random key order, "
        f"best of {args.rounds} rounds"
    )
    print(f"{'path':<38} {'images/s':>10} {'ratio':>7}")
    for name, rate in best.items():
        print(f"{name:<38} {rate:>10.0f} {rate / baseline:>7.2f}")
    ratio = best["pack: read+decode+RGB+normalize"] / baseline
    print(f"ratio (pack dataset / bare imdecode): {ratio:.2f} (target >= 0.8)")
    bare_read = best["pack: read+decode+RGB (read_sample)"] / baseline
    print(f"ratio without the normalize step (pack read+decode / bare imdecode): {bare_read:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
