"""The tables of docs/scale.md: sharded-head memory per GPU, images/s and decode cores per GPU for
an epoch in a given time, and gallery memory per faiss index type, from per-unit costs measured
by the benchmarks named beside each constant. Pure arithmetic: runs in well under a second.

    python benchmarks/scale_table.py [--epoch-hours 1] [--batch 128]
"""

from __future__ import annotations

import argparse

DIM = 512
FLOAT = 4  # bytes
#: Identities and images of the training sets (their published sizes).
DATASETS = {
    "MS1MV3": (93_431, 5_179_510),
    "Glint360K": (360_232, 17_091_657),
    "WebFace42M": (2_059_906, 42_474_557),
}
GPUS = (8, 16, 32, 64)
#: Per-class state of a sharded head with momentum SGD: weight, its dense gradient, momentum
#: (the 1M x 512 weight gradient measured 1953 MiB = 512 x 4 B per class: bench_heads.py).
HEAD_STATE_PER_CLASS = 3 * DIM * FLOAT
#: (batch x sampled classes) float32 tensors alive at the peak of a head step, per sample ratio
#: (bench_heads.py, K = 1M, batch 256: (5909 - 1953) MiB / 977 MiB at r = 1; (2179 - 1953) MiB
#: / 97.7 MiB at r = 0.1).
LOGIT_TENSORS = {1.0: (5909 - 1953) / 976.6, 0.1: (2179 - 1953) / 97.66}
#: Images/s one core decodes (bench_data.py): pack read + decode + collate, the trainer's batched
#: read (median of seven runs, docs/data.md), and the per-image item with float conversion that
#: the uint8 path replaced (its float work now runs once per batch on the device).
DECODE_PER_CORE = 12_452
ITEM_PER_CORE = 8_356
#: Training FLOPs per image: 3 x forward (docs/models.md, facebench.models.flops).
TRAIN_GFLOP = {"iresnet50": 3 * 12.619, "iresnet100": 3 * 24.179}
#: Bytes per gallery row (faiss's storage; d = 512): codes + the IVF list id (int64); every
#: facebench gallery also holds one int64 identity per row (+8).
INDEX_BYTES = {
    "Flat (float32)": DIM * FLOAT,
    "Flat fp16 (SQfp16)": DIM * 2,
    "HNSW32,Flat": DIM * FLOAT + 2 * 32 * 4,
    "IVF,SQ8": DIM + 8,
    "IVF,PQ64": 64 + 8,
    "IVF,PQ32": 32 + 8,
}
GALLERY_SIZES = (10_000_000, 100_000_000, 1_000_000_000)


def gib(n: float) -> str:
    return f"{n / 2**30:,.2f}"


def head_memory(classes: int, gpus: int, ratio: float, batch: int) -> float:
    """Bytes per GPU: the class shard's state plus the (global batch x sampled local classes)
    tensors, which is ``batch x ratio x classes`` whatever the GPU count."""
    state = HEAD_STATE_PER_CLASS * classes / gpus
    return state + LOGIT_TENSORS[ratio] * FLOAT * batch * ratio * classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epoch-hours", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128, help="per-GPU batch")
    args = parser.parse_args()
    print(f"Sharded head, GiB per GPU (d = {DIM}, per-GPU batch {args.batch}, momentum SGD):")
    print("| set | classes | r | " + " | ".join(f"{n} GPUs" for n in GPUS) + " |")
    print("|---|---:|---:|" + "---:|" * len(GPUS))
    for name, (classes, _) in DATASETS.items():
        for r in (1.0, 0.1):
            cells = " | ".join(gib(head_memory(classes, n, r, args.batch)) for n in GPUS)
            print(f"| {name} | {classes:,} | {r} | {cells} |")
    print(f"\nImages/s per GPU for one epoch in {args.epoch_hours:g} h, decode cores per GPU")
    print("(pack read+decode / former float item), sustained TFLOP/s per GPU for iresnet100:")
    print("| set | images | " + " | ".join(f"{n} GPUs" for n in GPUS) + " |")
    print("|---|---:|" + "---:|" * len(GPUS))
    for name, (_, images) in DATASETS.items():
        cells = []
        for n in GPUS:
            rate = images / (args.epoch_hours * 3600) / n
            cores = f"{rate / DECODE_PER_CORE:.2f}/{rate / ITEM_PER_CORE:.2f}"
            tflops = rate * TRAIN_GFLOP["iresnet100"] / 1000
            cells.append(f"{rate:,.0f} img/s, {cores} cores, {tflops:.1f} TFLOP/s")
        print(f"| {name} | {images:,} | " + " | ".join(cells) + " |")
    print(f"\nGallery memory, GiB (d = {DIM}; + 8 B identity per row):")
    print("| index | B/row | " + " | ".join(f"{n:,}" for n in GALLERY_SIZES) + " |")
    print("|---|---:|" + "---:|" * len(GALLERY_SIZES))
    for name, per_row in INDEX_BYTES.items():
        row = per_row + 8
        cells = " | ".join(gib(row * n) for n in GALLERY_SIZES)
        print(f"| {name} | {row} | {cells} |")


if __name__ == "__main__":
    main()
