"""Candidate feature extractors for the Fashion-MNIST study, side by side.

Trains each candidate (backbone, widths, precision) with the study's base recipe (schedule
included), the same data and number of epochs, one thread (the study runs one run per core), and
reports the trainer's images/s, the wall time and the test sample-wise / uniform accuracy. The
study's default extractor is chosen from this table (docs/results.md).

  python data_scripts/idx_to_packs.py /usr/share/datasets/fashion-mnist --out DATA \\
      --train-per-class 2000
  python benchmarks/study_extractors.py --data DATA --epochs 3 --out OUT
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from facebench import schema

REPO = Path(__file__).resolve().parents[1]
BASE_RECIPE = REPO / "recipes" / "fashion_mnist" / "base.yaml"

#: name -> recipe overrides of the extractor (backbone, widths, precision).
CANDIDATES = {
    "tiny_face 32-64-128 NCHW": (
        "model.options.widths=[32,64,128]",
        "train.channels_last=false",
    ),
    "tiny_face 32-64-128 channels_last": (
        "model.options.widths=[32,64,128]",
        "train.channels_last=true",
    ),
    "tiny_face 24-48-96 channels_last": (
        "model.options.widths=[24,48,96]",
        "train.channels_last=true",
    ),
    "tiny_face 16-32-64 channels_last": (
        "model.options.widths=[16,32,64]",
        "train.channels_last=true",
    ),
}


def measure(overrides: list[str], data: Path, run_dir: Path) -> dict:
    """Train one candidate, then its images/s (median of the logged intervals) and accuracy."""
    from facebench.config import load_recipe
    from facebench.eval.uniform_model import evaluate_uniform_model
    from facebench.train import train

    recipe = load_recipe(BASE_RECIPE, overrides)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(recipe, run_dir, data_root=data, progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in logged if "images_per_s" in r]
    report = evaluate_uniform_model(
        str(result.model_path), str(data / "closed" / "test"), progress=False
    )
    return {
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "images_per_cpu_s": result.steps * recipe.train.batch_size / cpu_seconds,
        "images_per_s": statistics.median(speeds),
        schema.SAMPLE_ACCURACY: report[schema.SAMPLE_ACCURACY],
        schema.UNIFORM_ACCURACY: report[schema.UNIFORM_ACCURACY],
        "final_loss": result.losses[-1],
    }


def main(argv: list[str] | None = None) -> int:
    """Measure every candidate with every head; print a table, write OUT/extractors.json."""
    import torch

    from facebench.fileio import write_json
    from facebench.study.heads import select_heads

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="idx_to_packs output folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for runs and JSON")
    parser.add_argument("--epochs", type=float, default=3.0, help="epochs per candidate")
    parser.add_argument(
        "--heads", default="softmax,bce_u_norm", help="study head keys (lr 0.1, γ 64)"
    )
    parser.add_argument("--only", help="comma-separated candidate names (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only.split(",") if args.only else list(CANDIDATES)
    rows = []
    for name in names:
        for head in select_heads(args.heads):
            overrides = [*CANDIDATES[name], f"train.epochs={args.epochs}"]
            overrides += head.overrides(0.1, 64.0 if head.has_scale() else None)
            run_dir = args.out / f"{name.replace(' ', '_')}-{head.key}"
            row = {
                "extractor": name,
                "head": head.key,
                **measure(overrides, args.data, run_dir),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_json(args.out / "extractors.json", rows)
    print("| extractor | head | images/s | images/CPU-s | train s | sample-wise | uniform |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['extractor']} | {r['head']} | {r['images_per_s']:.0f} "
            f"| {r['images_per_cpu_s']:.0f} | {r['train_seconds']:.0f} "
            f"| {r[schema.SAMPLE_ACCURACY]:.4f} | {r[schema.UNIFORM_ACCURACY]:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
