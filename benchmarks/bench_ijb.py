"""IJB 1:1 scoring at full size: peak memory of reading the pair list, scoring every template pair
and building the report, on a synthetic layout of IJB-C's size.

A temporary folder gets a ``ijbc_template_pair_label.txt`` of P pairs (IJB-C: 15,658,489, of
which 19,557 genuine) over T templates (IJB-C: 23,124) of 3,531 subjects, and T unit template
features of D dimensions (512) with subject structure. A child process then reads the pair file
(``read_ijb_meta``'s reader), scores the pairs and builds the 1:1 report
(``facebench.eval.ijb.verify_1to1``); it prints its resident set after setting up and its peak
(``ru_maxrss``). The image stage (embedding the crops, template pooling) is not part of this:
its memory grows with the image count, not the pair count.

    python benchmarks/bench_ijb.py            # IJB-C size
    python benchmarks/bench_ijb.py --pairs 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from facebench import schema

IJBC_PAIRS, IJBC_GENUINE, IJBC_TEMPLATES, IJBC_SUBJECTS = 15_658_489, 19_557, 23_124, 3_531


def write_layout(folder: str, n_pairs: int, n_templates: int, dim: int, seed: int = 0) -> None:
    """Template features (``features.npy``, ids 1..T, and ``subjects.npy``) and the pair file."""
    rng = np.random.default_rng(seed)
    subject = rng.integers(0, IJBC_SUBJECTS, n_templates)
    centres = rng.standard_normal((IJBC_SUBJECTS, dim))
    feats = centres[subject] + 2.5 * rng.standard_normal((n_templates, dim))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    np.save(os.path.join(folder, "features.npy"), feats)
    by_subject = np.argsort(subject, kind="stable")
    start = np.searchsorted(subject[by_subject], np.arange(IJBC_SUBJECTS))
    count = np.bincount(subject, minlength=IJBC_SUBJECTS)
    n_gen = round(n_pairs * IJBC_GENUINE / IJBC_PAIRS)
    path = os.path.join(folder, "ijbc_template_pair_label.txt")
    with open(path, "w") as f:
        for first in range(0, n_pairs, 1_000_000):
            n = min(1_000_000, n_pairs - first)
            a = rng.integers(0, n_templates, n)
            b = rng.integers(0, n_templates, n)
            gen = np.arange(first, first + n) < n_gen
            mates = by_subject[start[subject[a]] + rng.integers(0, count[subject[a]])]
            b = np.where(gen, mates, b)
            label = (subject[a] == subject[b]).astype(np.int64)
            rows = np.stack([a + 1, b + 1, label], 1)
            f.write("\n".join(f"{x} {y} {z}" for x, y, z in rows.tolist()) + "\n")


def score(folder: str) -> None:
    """Child: read the pairs, score them, build the report; print RSS figures and the result."""
    from facebench.eval import ijb

    def rss_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    feats = np.load(os.path.join(folder, "features.npy"))
    ids = np.arange(1, len(feats) + 1)
    base = rss_gib()
    start = time.perf_counter()
    path = os.path.join(folder, "ijbc_template_pair_label.txt")
    table = ijb._number_table(path, 3, np.int64)
    read_s = time.perf_counter() - start
    meta = ijb.IJBMeta([], ids, ids, None, None, table[:, :2].copy(), table[:, 2].astype(bool))
    del table
    after_read = rss_gib()
    start = time.perf_counter()
    report = ijb.verify_1to1(ids, feats, meta, path)
    score_s = time.perf_counter() - start
    tars = " ".join(f"{k}:{v:.4f}" for k, v in report[schema.TAR_AT_FAR].items())
    print(f"pairs {len(meta.pairs):,}  templates {len(ids):,}  dim {feats.shape[1]}")
    print(f"read pairs {read_s:.1f} s, score + report {score_s:.1f} s")
    print(f"peak RSS: {base:.2f} GiB after loading features, {after_read:.2f} GiB after reading")
    print(f"pairs, {rss_gib():.2f} GiB at the end")
    print(f"TAR@FAR {tars}  AUC {report[schema.AUC]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=IJBC_PAIRS)
    parser.add_argument("--templates", type=int, default=IJBC_TEMPLATES)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        score(args.child)
        return
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_layout(folder, args.pairs, args.templates, args.dim)
        print(f"synthetic layout written in {time.perf_counter() - start:.0f} s")
        subprocess.run([sys.executable, __file__, "--child", folder], check=True)


if __name__ == "__main__":
    main()
