"""The paper's claims on Fashion-MNIST: SoftMax vs BCE heads, uniform accuracy, learned bias vs t*.

Trains every recipe of recipes/fashion_mnist/ (heads differ, all else equal) with several seeds on
the closed set (all 10 classes) and on the open-set split (6 classes), then measures on the closed
test pack: sample-wise, class-wise (both readings) and uniform accuracy, t*, the learned threshold
and the feature geometry; and on pairs of held-out classes: 10-fold, global-threshold accuracy and
TAR@FAR=1e-2. A gamma sweep (normsoftmax vs normalized bce_u) gives the paper's figure 1.
Writes OUT/table.md, OUT/claims.md (BCE vs SoftMax, verdict per claim), OUT/study.json and
OUT/gamma_sweep.png; finished runs are reused on a rerun.

  python benchmarks/uniform_study.py --out study_out            # the full study (< 60 min)
  python benchmarks/uniform_study.py --quick --out /tmp/smoke   # CI smoke, about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "fashion_mnist"
DEFAULT_IDX = "/usr/share/datasets/fashion-mnist"
log = logging.getLogger("uniform_study")

#: (table label, recipe file): the paper's losses, everything else equal.
HEADS = (
    ("L_soft", "softmax.yaml"),
    ("L_bce-u", "bce_u.yaml"),
    ("L_bce-d", "bce_d.yaml"),
    ("L_soft-nu", "normsoftmax.yaml"),
    ("L_bce-nu", "bce_u_norm.yaml"),
    ("CosFace (L_soft-nu, m=0.4)", "cosface.yaml"),
    ("L_bce-nu, m=0.4", "bce_u_margin.yaml"),
)
#: gamma sweep of the paper's figure 1: label -> recipe (both at gamma 64 in the recipe).
SWEEP = (("L_soft-nu (normsoftmax)", "normsoftmax.yaml"), ("L_bce-nu (bce_u)", "bce_u_norm.yaml"))
GAMMAS = (32, 64, 96, 128, 192)
RECIPE_GAMMA = 64
OPEN_TRAIN_CLASSES = "0-5"

#: Study sizes: images per class kept for training and testing (None: all), genuine/impostor
#: pairs per fold of the held-out bin, epochs, seeds per head, seeds per gamma sweep point.
SIZES = {
    "full": {
        "train_per_class": 300,
        "test_per_class": 300,
        "pairs_per_half": 100,
        "epochs": 3.0,
        "seeds": 3,
        "sweep_seeds": 2,
    },
    "quick": {
        "train_per_class": 40,
        "test_per_class": 30,
        "pairs_per_half": 20,
        "epochs": 1.0,
        "seeds": 2,
        "sweep_seeds": 1,
    },
}
METRICS = (
    ("sample_accuracy", "sample-wise acc"),
    ("class_wise_accuracy_sample_weighted", "class-wise acc (samples)"),
    ("class_wise_accuracy_class_mean", "class-wise acc (class mean)"),
    ("uniform_accuracy", "uniform acc"),
    ("t_star", "t*"),
    ("learned_threshold", "b/γ"),
    ("uniform_accuracy_at_learned_threshold", "uniform acc at b"),
    ("intra_class_cosine", "intra-class cos"),
    ("inter_class_cosine_mean", "inter-class cos (mean)"),
    ("inter_class_cosine_max", "inter-class cos (max)"),
    ("verification_accuracy_10fold", "open-set 10-fold acc"),
    ("verification_global_accuracy", "open-set global acc"),
    ("verification_tar_at_far_1e-2", "open-set TAR@FAR=1e-2"),
    ("verification_global_threshold", "open-set τ (cos)"),
)


@dataclass(frozen=True)
class Run:
    """One training run: a recipe on the closed or open split with a seed and overrides."""

    key: str
    recipe: str
    task: str  # "closed" or "open"
    seed: int
    overrides: tuple[str, ...] = field(default=())


# ---- measurements ------------------------------------------------------------------------------
def feature_geometry(features: np.ndarray, labels: np.ndarray) -> dict:
    """Compactness and separation of L2-normalized features around their class centres.

    intra: mean cosine of each feature to its own class centre (the normalized class mean);
    inter: mean and max cosine between distinct class centres.
    """
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    classes = np.unique(labels)
    centres = np.stack([unit[labels == c].mean(axis=0) for c in classes])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = centres[np.searchsorted(classes, labels)]
    between = centres @ centres.T
    off_diagonal = between[~np.eye(len(classes), dtype=bool)]
    return {
        "intra_class_cosine": float(np.mean(np.sum(unit * own, axis=1))),
        "inter_class_cosine_mean": float(off_diagonal.mean()),
        "inter_class_cosine_max": float(off_diagonal.max()),
    }


def threshold_report(uniform: dict, head) -> dict:
    """t* beside the learned threshold b/γ, both in cosine units (linear heads: w·x units).

    The head's scores subtract the bias (s = γ cos − b), so t* on them is shifted back by b/γ.
    The learned threshold is ``head.decision_threshold()``: None for per-class biases (SoftMax,
    bce_d: K thresholds, not one) and heads without a bias.
    """
    decision = head.decision_threshold()
    learned = None if decision is None else decision.value
    offset = float(head.bias.detach()) / head.scale if head.bias_mode == "unified" else 0.0
    t_star = uniform["uniform_threshold"]
    return {
        "t_star": None if t_star is None else t_star / head.scale + offset,
        "learned_threshold": learned,
        "uniform_accuracy_at_learned_threshold": uniform["uniform_accuracy_at_learned_threshold"],
    }


def evaluate_closed(model_path: Path, pack_dir: Path) -> dict:
    """Uniform metrics, thresholds and feature geometry of a trained model on a test pack."""
    import torch

    from facebench.data.packs import FacePack
    from facebench.embed import TorchEmbedder, embed_images
    from facebench.eval.uniform import uniform_metrics
    from facebench.models.artifact import load_head_from_artifact, load_model_artifact

    module, info = load_model_artifact(model_path)
    head = load_head_from_artifact(model_path)
    pack = FacePack(str(pack_dir))
    keys = [int(k) for k in pack.image_keys]
    images = np.stack([pack.read_image(k) for k in keys])
    labels = np.asarray([pack.label(k) for k in keys])
    embedder = TorchEmbedder(module, info["convention"])
    features = embed_images(embedder, images, 256, flip_sum=False, normalize=False, progress=False)
    scores = head.scores(torch.from_numpy(features)).numpy()
    # a unified bias is the threshold: it sits at score 0 because the scores subtract it
    has_threshold = head.decision_threshold() is not None
    uniform = uniform_metrics(
        scores, labels, learned_threshold=0.0 if has_threshold else None, source=str(pack_dir)
    )
    result = {k: uniform[k] for k in (m for m, _ in METRICS) if k in uniform}
    result.update(threshold_report(uniform, head))
    result.update(feature_geometry(features, labels))
    return result


def evaluate_open(model_path: Path, bin_path: Path) -> dict:
    """Verification of a model trained on the open split, on pairs of held-out classes."""
    from facebench.data.bins import read_verification_bin
    from facebench.embed import TorchEmbedder, embed_images
    from facebench.eval.verification import evaluate_verification
    from facebench.models.artifact import load_model_artifact

    module, info = load_model_artifact(model_path)
    vbin = read_verification_bin(str(bin_path))
    embedder = TorchEmbedder(module, info["convention"])
    embeddings = embed_images(embedder, vbin.decode(), 256, progress=False)
    report = evaluate_verification(embeddings, vbin.issame, source=str(bin_path))
    return {
        "verification_accuracy_10fold": report["accuracy_10fold_mean"],
        "verification_global_accuracy": report["global_accuracy"],
        "verification_tar_at_far_1e-2": report["tar_at_far"].get("1e-02"),
        "verification_global_threshold": report["global_threshold"],
    }


# ---- running ---------------------------------------------------------------------------------
def train_and_evaluate(run: Run, data_dir: Path, runs_dir: Path, epochs: float) -> dict:
    """Train one run (unless its result exists) and evaluate it; return its result dict."""
    from facebench.config import load_recipe
    from facebench.errors import FacebenchError
    from facebench.train import train
    from facebench.train.checkpoint import latest_checkpoint

    run_dir = runs_dir / run.key
    result_path = run_dir / "study_result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    start = time.perf_counter()
    overrides = [f"train.seed={run.seed}", f"train.epochs={epochs}", *run.overrides]
    if run.task == "open":
        overrides.append("data.train=open/train")
    recipe = load_recipe(RECIPES / run.recipe, overrides)
    model_path = run_dir / "model.pt"
    described = {"run": run.key, "recipe": run.recipe, "task": run.task, "seed": run.seed}
    if not model_path.is_file():  # else: trained already, only the evaluation was cut short
        resume = latest_checkpoint(run_dir / "checkpoints") is not None
        try:
            train(recipe, run_dir, data_root=data_dir, resume=resume, progress=False)
        except FacebenchError as exc:  # e.g. a diverged loss: a result too, not cached
            return {**described, "error": str(exc), "train_seconds": time.perf_counter() - start}
    trained = time.perf_counter()
    if run.task == "closed":
        metrics = evaluate_closed(model_path, data_dir / "closed" / "test")
    else:
        metrics = evaluate_open(model_path, data_dir / "open" / "heldout.bin")
    result = {
        **described,
        "overrides": list(run.overrides),
        "train_seconds": trained - start,
        "eval_seconds": time.perf_counter() - trained,
        **metrics,
    }
    _write_json(result_path, result)
    return result


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)


def plan_runs(seeds: int, sweep_seeds: int) -> tuple[list[Run], list[Run]]:
    """The table's runs (closed and open, every head and seed) and the gamma sweep's extra runs."""
    table = [
        Run(f"{Path(recipe).stem}-{task}-s{seed}", recipe, task, seed)
        for _, recipe in HEADS
        for task in ("closed", "open")
        for seed in range(seeds)
    ]
    sweep = [
        Run(
            sweep_key(recipe, gamma, seed),
            recipe,
            "closed",
            seed,
            (f"head.params.scale={gamma:.1f}",),
        )
        for _, recipe in SWEEP
        for gamma in GAMMAS
        if gamma != RECIPE_GAMMA
        for seed in range(sweep_seeds)
    ]
    return table, sweep


def sweep_key(recipe: str, gamma: int, seed: int) -> str:
    """The run key of a sweep point (gamma 64 is the table's own run)."""
    stem = Path(recipe).stem
    suffix = "" if gamma == RECIPE_GAMMA else f"-g{gamma}"
    return f"{stem}-closed{suffix}-s{seed}"


def prepare_data(idx_dir: str, data_dir: Path, size: dict, seed: int) -> None:
    """Convert the idx set into packs and the held-out bin (skipped when split.json exists)."""
    wanted = {k: size[k] for k in ("train_per_class", "test_per_class", "pairs_per_half")}
    stamp = data_dir / "study_size.json"
    if (data_dir / "split.json").is_file():
        if json.loads(stamp.read_text()) != wanted:
            raise SystemExit(f"{data_dir} holds data of another size ({stamp}); use a new --out")
        return
    script = REPO / "data_scripts" / "idx_to_packs.py"
    cmd = [sys.executable, str(script), idx_dir, "--out", str(data_dir)]
    cmd += ["--open-train-classes", OPEN_TRAIN_CLASSES, "--seed", str(seed)]
    cmd += ["--train-per-class", str(size["train_per_class"])]
    cmd += ["--pairs-per-half", str(size["pairs_per_half"])]
    if size["test_per_class"] is not None:
        cmd += ["--test-per-class", str(size["test_per_class"])]
    subprocess.run(cmd, check=True)
    _write_json(stamp, wanted)


# ---- reporting --------------------------------------------------------------------------------
def mean_std(values: list) -> tuple[float, float] | None:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of the non-None values."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std


def summarize(results: dict[str, dict], seeds: int) -> list[dict]:
    """Per head: every metric as mean and std over seeds (closed metrics + open metrics)."""
    rows = []
    for label, recipe in HEADS:
        stem = Path(recipe).stem
        merged: dict[str, list] = {}
        for task in ("closed", "open"):
            for seed in range(seeds):
                for key, value in results[f"{stem}-{task}-s{seed}"].items():
                    merged.setdefault(key, []).append(value)
        stats = {m: mean_std(merged.get(m, [])) for m, _ in METRICS}
        rows.append({"head": label, "recipe": recipe, **stats})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The table as Markdown: one row per head, ``mean ± std`` cells."""

    def cell(stat, metric: str) -> str:
        if stat is None:
            return "—"
        digits = 4 if "accuracy" in metric or "tar" in metric else 3
        return f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"

    lines = ["| head | " + " | ".join(name for _, name in METRICS) + " |"]
    lines.append("|---" * (len(METRICS) + 1) + "|")
    for row in rows:
        cells = [cell(row[m], m) for m, _ in METRICS]
        lines.append(f"| {row['head']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: (BCE head, the SoftMax head it is set against), by table label.
COMPARISONS = (
    ("L_bce-u", "L_soft"),
    ("L_bce-nu", "L_soft-nu"),
    ("L_bce-nu, m=0.4", "CosFace (L_soft-nu, m=0.4)"),
)
#: The metrics the paper's claims are about, and whether higher is better.
CLAIM_METRICS = (
    ("sample_accuracy", True),
    ("uniform_accuracy", True),
    ("intra_class_cosine", True),
    ("inter_class_cosine_mean", False),
    ("inter_class_cosine_max", False),
    ("verification_accuracy_10fold", True),
    ("verification_global_accuracy", True),
    ("verification_tar_at_far_1e-2", True),
)


def verdict(bce: tuple[float, float], soft: tuple[float, float], higher_is_better: bool) -> str:
    """'held' if BCE's mean is better by more than the larger seed std of the two, 'reversed' if
    worse by that much, else 'within noise' (a crude rule for 3 seeds, stated in the docs)."""
    gain = (bce[0] - soft[0]) * (1 if higher_is_better else -1)
    margin = max(bce[1], soft[1])
    return "held" if gain > margin else "reversed" if gain < -margin else "within noise"


def claims_markdown(rows: list[dict]) -> str:
    """Per comparison and claim metric: both means ± std, the difference and the verdict."""
    by_label = {row["head"]: row for row in rows}
    names = dict(METRICS)
    lines = ["| BCE head | vs | metric | BCE | SoftMax | BCE − SoftMax | verdict |"]
    lines.append("|---|---|---|---|---|---|---|")
    for bce_label, soft_label in COMPARISONS:
        for metric, higher in CLAIM_METRICS:
            bce, soft = by_label[bce_label][metric], by_label[soft_label][metric]
            if bce is None or soft is None:
                continue
            lines.append(
                f"| {bce_label} | {soft_label} | {names[metric]} | {bce[0]:.4f} ± {bce[1]:.4f} "
                f"| {soft[0]:.4f} ± {soft[1]:.4f} | {bce[0] - soft[0]:+.4f} "
                f"| {verdict(bce, soft, higher)} |"
            )
    return "\n".join(lines) + "\n"


def sweep_points(results: dict[str, dict], sweep_seeds: int) -> dict:
    """Per sweep head and gamma: mean/std of uniform and sample-wise accuracy."""
    points = {}
    for label, recipe in SWEEP:
        points[label] = {
            metric: [
                mean_std([results[sweep_key(recipe, g, s)].get(metric) for s in range(sweep_seeds)])
                for g in GAMMAS
            ]
            for metric in ("uniform_accuracy", "sample_accuracy")
        }
    return points


def plot_sweep(points: dict, path: Path) -> None:
    """Uniform and sample-wise accuracy vs gamma, both heads (the paper's figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, metric, title in zip(
        axes,
        ("uniform_accuracy", "sample_accuracy"),
        ("uniform accuracy", "sample-wise accuracy"),
        strict=True,
    ):
        for label, series in points.items():
            mean = [p[0] for p in series[metric]]
            std = [p[1] for p in series[metric]]
            ax.errorbar(GAMMAS, mean, yerr=std, marker="o", capsize=3, label=label)
        ax.set_xlabel("γ (scale)")
        ax.set_xticks(GAMMAS)
        ax.set_title(f"Fashion-MNIST test: {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def _log_result(i: int, total: int, result: dict) -> None:
    shown = ("sample_accuracy", "uniform_accuracy", "verification_global_accuracy")
    values = ", ".join(f"{m}={result[m]:.4f}" for m in shown if result.get(m) is not None)
    if "error" in result:
        values = f"FAILED: {result['error']}"
    log.info(
        "[%d/%d] %s: train %.1fs, %s", i, total, result["run"], result["train_seconds"], values
    )


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the study; write table.md, study.json and gamma_sweep.png under --out."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke run")
    parser.add_argument("--seeds", type=int, help="seeds per head (default 3; --quick: 2)")
    parser.add_argument(
        "--sweep-seeds", type=int, help="seeds per gamma sweep point (default 2; --quick: 1)"
    )
    parser.add_argument("--epochs", type=float, help="training epochs (default 3; --quick: 1)")
    parser.add_argument(
        "--train-per-class", type=int, help="training images per class (default 300; --quick: 40)"
    )
    parser.add_argument(
        "--test-per-class", type=int, help="test images per class (default 300; --quick: 30)"
    )
    parser.add_argument(
        "--pairs-per-half",
        type=int,
        help="genuine (= impostor) pairs per fold of the held-out bin (default 100; --quick: 20)",
    )
    parser.add_argument("--out", default="study_out", help="output directory (default study_out)")
    parser.add_argument("--idx", default=DEFAULT_IDX, help="MNIST-format idx set directory")
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs trained in parallel (default 2, one per core)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = dict(SIZES["quick" if args.quick else "full"])
    for key in size:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if min(args.jobs, *size.values()) <= 0:
        parser.error("--jobs and every size option must be positive")
    out = Path(args.out)
    data_dir, runs_dir = out / "data", out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = " ".join(["benchmarks/uniform_study.py", *(sys.argv[1:] if argv is None else argv)])
    summary = {"command": command, "size": size, "jobs": args.jobs}

    prepare_data(args.idx, data_dir, size, seed=0)
    table_runs, sweep_runs = plan_runs(size["seeds"], size["sweep_seeds"])
    total = len(table_runs) + len(sweep_runs)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    results: dict[str, dict] = {}
    os.environ.setdefault("TQDM_DISABLE", "1")
    with ProcessPoolExecutor(
        args.jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = [
            (run, pool.submit(train_and_evaluate, run, data_dir, runs_dir, size["epochs"]))
            for run in table_runs + sweep_runs
        ]
        for i, (run, future) in enumerate(futures, 1):
            results[run.key] = future.result()
            _log_result(i, total, results[run.key])
            if i == len(table_runs):  # the table is ready before the sweep ends
                summary["table"] = summarize(results, size["seeds"])
                (out / "table.md").write_text(markdown_table(summary["table"]))
                (out / "claims.md").write_text(claims_markdown(summary["table"]))
                _write_json(out / "study.json", {**summary, "runs": results})

    points = sweep_points(results, size["sweep_seeds"])
    plot_sweep(points, out / "gamma_sweep.png")
    elapsed = time.perf_counter() - started
    summary.update(
        {
            "wall_seconds": elapsed,
            "train_seconds_total": sum(r["train_seconds"] for r in results.values()),
            "eval_seconds_total": sum(r.get("eval_seconds", 0.0) for r in results.values()),
            "failed_runs": {k: r["error"] for k, r in results.items() if "error" in r},
            "gamma_sweep": {"gammas": list(GAMMAS), **points},
            "runs": results,
        }
    )
    _write_json(out / "study.json", summary)
    print(markdown_table(summary["table"]))
    written = "table.md, claims.md, study.json, gamma_sweep.png"
    print(f"{total} runs in {elapsed / 60:.1f} min; wrote {written} under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
