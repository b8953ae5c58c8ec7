"""Evaluation speed: the sorted-count protocol against a plain threshold-grid loop, and faiss QPS.

Part 1, on P synthetic pairs (P = 6,000 and 1,000,000): the standard 10-fold accuracy and
VAL@FAR=1e-3 and the global threshold, timed for facebench.eval.verification (sorting and
``searchsorted``) and for a plain implementation (a Python loop over the 400 / 4,000 thresholds
of every fold, as the protocol is usually written; a loop over a 0.001 cosine grid for the global
threshold). Ratios come from one run; 10-fold and VAL must agree exactly, and the exact global
threshold is never below the grid's.
Then the whole verification report (facebench only) on 10,000,000 pairs (1,000,000 with --quick).
Part 2: faiss search of probes against an N x 512 gallery (clustered synthetic identities):
queries per second of exact (Flat) and IVF search, with IVF's recall@1 against exact.

    python benchmarks/bench_eval.py            # 6,000 and 1,000,000 pairs; 1M x 512 gallery
    python benchmarks/bench_eval.py --quick    # 6,000 and 100,000 pairs; 100K x 512 gallery
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.model_selection import KFold

from facebench import schema
from facebench.eval import verification as V
from facebench.eval.identification import exact_recall_at_1
from facebench.search import Gallery


def synthetic_scores(n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dist, cos, issame) of overlapping genuine / impostor cosine distributions."""
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    cos = np.where(issame, rng.normal(0.55, 0.15, n_pairs), rng.normal(0.05, 0.12, n_pairs))
    cos = np.clip(cos, -1.0, 1.0)
    return 2.0 - 2.0 * cos, cos, issame


def plain_ten_fold(dist, issame):
    """Accuracy as usually written: KFold, a loop over 400 thresholds per fold, argmax."""
    thresholds = np.arange(0, 4, 0.01)
    accs = []
    for train, test in KFold(n_splits=10, shuffle=False).split(dist):
        d, s = dist[train], issame[train]
        train_acc = [np.mean((d < t) == s) for t in thresholds]
        t = thresholds[int(np.argmax(train_acc))]
        accs.append(float(np.sum((dist[test] < t) == issame[test])) / test.size)
    return float(np.mean(accs)), float(np.std(accs))


def plain_val(dist, issame, target=1e-3):
    """VAL@FAR as usually written: a loop over 4,000 thresholds per fold, then interpolation."""
    thresholds = np.arange(0, 4, 0.001)
    vals = []
    for train, test in KFold(n_splits=10, shuffle=False).split(dist):
        imp = dist[train][~issame[train]]
        far = np.array([np.sum(imp < t) for t in thresholds]) / imp.size
        t = V.interpolate_threshold(far, thresholds, target)
        vals.append(np.sum((dist[test] < t) & issame[test]) / np.sum(issame[test]))
    return float(np.mean(vals))


def plain_global(cos, issame):
    """Best single cosine threshold on a 0.001 grid, one accuracy pass per grid value."""
    return max(float(np.mean((cos > t) == issame)) for t in np.arange(-1, 1, 0.001))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def protocol_rows(n_pairs: int) -> list[dict]:
    dist, cos, issame = synthetic_scores(n_pairs)
    fast_acc, t_fast_acc = timed(V.ten_fold_accuracy, dist, issame)
    fast_val, t_fast_val = timed(V.val_at_far, dist, issame)
    (_, fast_global), t_fast_global = timed(V.best_global_threshold, cos, issame)
    (plain_mean, plain_std), t_plain_acc = timed(plain_ten_fold, dist, issame)
    plain_v, t_plain_val = timed(plain_val, dist, issame)
    grid_global, t_plain_global = timed(plain_global, cos, issame)
    assert fast_acc[schema.ACCURACY_10FOLD_MEAN] == plain_mean, "10-fold accuracies differ"
    assert fast_acc[schema.ACCURACY_10FOLD_STD] == plain_std, "10-fold std differs"
    assert fast_val["val_at_far_1e-3"] == plain_v, "VAL@FAR differs"
    assert fast_global >= grid_global, "the exact global threshold lost to a grid"
    rows = [
        (
            "10-fold accuracy",
            t_fast_acc,
            t_plain_acc,
            f"{fast_acc[schema.ACCURACY_10FOLD_MEAN]:.6f}",
        ),
        ("VAL@FAR=1e-3", t_fast_val, t_plain_val, f"{fast_val['val_at_far_1e-3']:.6f}"),
        (
            "global threshold",
            t_fast_global,
            t_plain_global,
            f"{fast_global:.6f} vs grid {grid_global:.6f}",
        ),
    ]
    total_fast = t_fast_acc + t_fast_val + t_fast_global
    total_plain = t_plain_acc + t_plain_val + t_plain_global
    rows.append(("all three", total_fast, total_plain, "identical 10-fold and VAL"))
    return [
        {"pairs": n_pairs, "part": name, "facebench_s": f, "plain_s": p, "ratio": p / f, "value": v}
        for name, f, p, v in rows
    ]


def full_report_seconds(n_pairs: int) -> tuple[float, float]:
    """(wall, CPU) seconds for every verification metric (facebench only) on ``n_pairs`` pairs;
    CPU time shows the cost on a machine that other jobs share."""
    dist, cos, issame = synthetic_scores(n_pairs, seed=1)
    cpu = time.process_time()
    _, seconds = timed(V.score_report, dist, cos, issame, "bench")
    return seconds, time.process_time() - cpu


def clustered_gallery(n: int, dim: int, n_probes: int, seed: int = 0):
    """``n`` unit vectors around n/4 identity centres, and probes near random gallery rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 4, 1), dim), dtype=np.float32)
    gallery = centres[rng.integers(0, len(centres), n)]
    gallery += 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    picks = rng.integers(0, n, n_probes)
    probes = gallery[picks] + 0.6 * rng.standard_normal((n_probes, dim), dtype=np.float32)
    return gallery, probes


def search_rows(
    n: int, dim: int, n_probes: int, nlist: int, nprobe: int, device: str = "cpu"
) -> list[dict]:
    """Build time, QPS and recall@1 of Flat and IVF galleries on ``device`` (cpu, cuda)."""
    gallery, probes = clustered_gallery(n, dim, n_probes)
    ids = np.arange(n)
    rows = []
    for factory, params in (("Flat", None), (f"IVF{nlist},Flat", f"nprobe={nprobe}")):
        index = Gallery(dim, factory)
        index.to_device(device)
        start = time.perf_counter()
        if factory != "Flat":
            index.train(gallery[: min(n, 64 * nlist)])
        index.add(gallery, ids)
        build = time.perf_counter() - start
        if params:
            index.set_search_params(params)
        index.search(probes[:10], 1)
        _, seconds = timed(index.search, probes, 1)
        recall = 1.0 if factory == "Flat" else exact_recall_at_1(index, gallery, probes)
        rows.append(
            {
                "gallery": n,
                "dim": dim,
                "index": factory + (f" ({params})" if params else "") + f" {device}",
                "build_s": build,
                "qps": n_probes / seconds,
                "recall_at_1": recall,
            }
        )
    return rows


def print_search_rows(rows: list[dict]) -> None:
    """The faiss rows of :func:`search_rows` as a table."""
    print(f"\n{'gallery':>9} {'dim':>4} {'index':<30} {'build s':>8} {'QPS':>9} recall@1")
    for r in rows:
        print(
            f"{r['gallery']:>9} {r['dim']:>4} {r['index']:<30} {r['build_s']:>8.1f} "
            f"{r['qps']:>9.0f} {r['recall_at_1']:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--only", choices=("protocol", "search"), help="run one part")
    args = parser.parse_args()
    sizes = (6_000, 100_000) if args.quick else (6_000, 1_000_000)
    gallery = 100_000 if args.quick else 1_000_000
    big = 1_000_000 if args.quick else 10_000_000
    protocol, search, seconds = [], [], None
    if args.only != "search":
        protocol = [row for n in sizes for row in protocol_rows(n)]
        print(f"{'pairs':>9} {'part':<18} {'facebench s':>12} {'plain s':>10} {'ratio':>8}  value")
        for r in protocol:
            print(
                f"{r['pairs']:>9} {r['part']:<18} {r['facebench_s']:>12.4f} "
                f"{r['plain_s']:>10.3f} {r['ratio']:>7.0f}x  {r['value']}"
            )
        seconds = full_report_seconds(big)
        print("\nfull verification report (10-fold, VAL, global, EER, AUC, TAR@FAR, figure data)")
        print(f"on {big:,} pairs: {seconds[0]:.2f} s wall, {seconds[1]:.2f} s CPU")
    if args.only != "protocol":
        search = search_rows(gallery, 512, 1000, nlist=256 if args.quick else 1024, nprobe=16)
        print_search_rows(search)
    if args.json:
        with open(args.json, "w") as f:
            report = {
                "pairs": big,
                "seconds": seconds and seconds[0],
                "cpu": seconds and seconds[1],
            }
            json.dump({"protocol": protocol, "full_report": report, "search": search}, f, indent=1)


if __name__ == "__main__":
    main()
