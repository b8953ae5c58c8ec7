"""The main job on its embedded default: synthetic faces -> four heads -> evaluation -> report.

`run_quickstart` generates the synthetic pack and open-set bins when they are missing, trains
`bce_u` (with margin), ArcFace, CosFace and SoftMax (or any heads with a `recipes/synth/`
recipe) for the same epochs, checks that each ended on a training-loss plateau
(:mod:`facebench.train.convergence`), evaluates each with the 10-fold protocol, the single
global threshold, TAR@FAR, the uniform metrics and open-set identification in a faiss gallery,
and renders a report. Each head trains in its own process on one intra-op thread with
deterministic algorithms, so the results are bit-identical across runs and do not depend on how
many heads run at once. Everything is written under a temporary folder beside ``out`` and
renamed at the end, so a failure leaves no half-written report and never touches an earlier
run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facebench import schema
from facebench.data.synth.dataset import SynthConfig, ensure_synthetic_data
from facebench.errors import ConfigError
from facebench.fileio import atomic_dir, check_output_dir, write_json
from facebench.runs import map_runs, reproducible_threads, train_to_plateau

log = logging.getLogger(__name__)

#: The heads the quickstart compares, in report order (recipes/synth/<name>.yaml).
HEADS = ("bce_u", "arcface", "cosface", "softmax")

#: Images per held-out identity rendered for the open-set identification gallery and probes.
IDENTIFICATION_IMAGES = 4
_IDENTIFICATION_STREAM = 3000  # image numbers no bin uses (bins use 1000+ and 2000+)


@dataclass(frozen=True)
class QuickstartSize:
    """How big the quickstart is: the synthetic data, its folder under --data, and the recipe
    overrides (none at the default size: `recipes/synth/` holds the quickstart's settings)."""

    synth: SynthConfig
    folder: str
    overrides: tuple[str, ...] = field(default=())


#: Faces are drawn at 56x56: on 2 CPU cores the tiny backbone trains about four times faster
#: than at 112x112 and, in the same minutes, separates held-out identities far better. The bins
#: hold 2,400 pairs: 1,200 impostor pairs (120 per fold), so TAR@FAR=1e-3 is defined on the
#: whole bin and VAL@FAR=1e-3 on the 1,080 impostors of each 9-fold training part.
SIZES = {
    "default": QuickstartSize(
        SynthConfig(
            identities=200,
            images_per_identity=20,
            val_identities=100,
            val_images_per_identity=8,
            pairs=2400,
            image_size=56,
        ),
        "synth",
    ),
    "quick": QuickstartSize(
        SynthConfig(
            identities=16,
            images_per_identity=6,
            test_images_per_identity=2,
            val_identities=20,
            val_images_per_identity=4,
            pairs=200,
            image_size=56,
        ),
        "synth-quick",
        # the default's LR drops at 50, 60 and 80 % of training, scaled to 2 epochs
        ("train.epochs=2", "schedule.milestones=[1,1.2,1.6]", "train.batch_size=32"),
    ),
}

#: Intra-op threads of each head's process (fixed: results depend on the thread count).
THREADS_PER_HEAD = 1


def default_workers() -> int:
    """Heads trained at once by default: one per CPU core, at most two."""
    return max(1, min(2, os.cpu_count() or 1))


def default_recipes_dir() -> Path:
    """`recipes/` of the source checkout this package is installed from."""
    return Path(__file__).resolve().parent.parent / "recipes"


def identification_split(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Open-set gallery and probes from the held-out identities (never seen in training).

    The first half of the identities is enrolled with one image each; their other images are
    mated probes, every image of the second half is a non-mated probe.
    Returns ``(gallery_images, gallery_ids, probe_images, probe_ids)`` as uint8 RGB arrays.
    """
    from facebench.data.images import decode_image
    from facebench.data.synth.dataset import encode_identity_images

    images = range(_IDENTIFICATION_STREAM, _IDENTIFICATION_STREAM + IDENTIFICATION_IMAGES)
    enrolled = cfg.val_identities // 2
    gallery, gallery_ids, probes, probe_ids = [], [], [], []
    for j in range(cfg.val_identities):
        identity = cfg.identities + j
        jpegs = encode_identity_images(cfg.seed, cfg.image_size, identity, images, cfg.difficulty)
        rgb = [decode_image(b, source=f"synthetic identity {identity}") for b in jpegs]
        if j < enrolled:
            gallery.append(rgb[0])
            gallery_ids.append(identity)
            rgb = rgb[1:]
        probes.extend(rgb)
        probe_ids.extend([identity] * len(rgb))
    return np.stack(gallery), np.array(gallery_ids), np.stack(probes), np.array(probe_ids)


def evaluate_run(
    run_dir: Path,
    data_dir: Path,
    identification_images: tuple,
    device: str,
    progress: bool = True,
) -> None:
    """Verification, uniform and identification reports of a trained run, under run/reports.

    ``identification_images``: the :func:`identification_split` shared by every run."""
    from facebench.embed import embed_images, load_embedder
    from facebench.eval.identification import identification_metrics
    from facebench.eval.uniform_model import evaluate_uniform_model
    from facebench.eval.verify_bins import verify_bins

    model = run_dir / "model.pt"
    reports = run_dir / "reports"
    embedder = load_embedder(str(model), device=device)
    bins = sorted(str(p) for p in data_dir.glob("*.bin"))
    verify_bins(bins, str(reports), embedder=embedder, model_name=run_dir.name, progress=progress)
    uniform = evaluate_uniform_model(
        str(model), str(data_dir / "test.rec"), device, 64, progress=progress
    )
    write_json(str(reports / "uniform.json"), uniform)
    gallery, gallery_ids, probes, probe_ids = identification_images
    identification = identification_metrics(
        embed_images(embedder, gallery, progress=False),
        gallery_ids,
        embed_images(embedder, probes, progress=False),
        probe_ids,
    )
    write_json(str(reports / "identification.json"), identification)


@dataclass(frozen=True)
class HeadRun:
    """One head of the quickstart: what to train, where, and on what."""

    head: str
    recipe: Path
    run_dir: Path
    data: Path
    overrides: tuple[str, ...]
    device: str
    identification_images: tuple


def train_and_evaluate(run: HeadRun) -> dict:
    """Train one head to its plateau verdict (:func:`facebench.runs.train_to_plateau`) and
    write its evaluation reports, reproducibly; return the verdict and timings (run in a worker
    process)."""
    started, cpu = time.perf_counter(), time.process_time()
    overrides = [f"data.train={run.data.name}", *run.overrides, "eval.bins=[]"]
    with reproducible_threads(THREADS_PER_HEAD):
        _, training = train_to_plateau(
            run.recipe, run.run_dir, run.data.parent, overrides, run.device
        )
        evaluate_run(run.run_dir, run.data, run.identification_images, run.device, False)
    return {
        "head": run.head,
        "epochs": len(training[schema.EPOCH_LOSSES]),
        schema.PLATEAU: training[schema.PLATEAU],
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }


def check_heads(heads: tuple[str, ...] | list[str], recipes: Path) -> list[Path]:
    """The recipe of each head; ConfigError for an unregistered head, a repeated one or a
    missing recipe."""
    from facebench.heads import HEADS as REGISTERED

    if not heads:
        raise ConfigError("quickstart: --heads needs at least one head")
    for head in heads:
        if head not in REGISTERED:
            raise ConfigError(
                f"quickstart: unknown head {head!r}; registered heads: {', '.join(REGISTERED)}"
            )
    if len(set(heads)) != len(heads):
        raise ConfigError(f"quickstart: a head is named twice in {', '.join(heads)}")
    files = [recipes / "synth" / f"{head}.yaml" for head in heads]
    for recipe in files:
        if not recipe.is_file():
            raise ConfigError(f"{recipe}: quickstart recipe missing (see --recipes)")
    return files


def run_quickstart(
    out: str | os.PathLike,
    data_dir: str | os.PathLike,
    size: str = "default",
    device: str = "cpu",
    recipes_dir: str | os.PathLike | None = None,
    progress: bool = True,
    heads: tuple[str, ...] | list[str] = HEADS,
    workers: int | None = None,
) -> Path:
    """Run the whole quickstart into ``out`` (must not exist); return the path of report.md.

    ``progress``: draw the progress bars of data synthesis (the heads train in workers, without
    bars). ``workers`` heads train at once (default :func:`default_workers`; 1 on a GPU); the
    results do not depend on it."""
    from facebench.report import render_report

    if size not in SIZES:
        raise ConfigError(f"quickstart: unknown size {size!r}; choose from {sorted(SIZES)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"quickstart: --workers must be at least 1, got {workers}")
    chosen = SIZES[size]
    out = Path(out).absolute()
    recipes = Path(recipes_dir) if recipes_dir else default_recipes_dir()
    check_output_dir(out, new=True)
    check_output_dir(data_dir, option="--data")
    recipe_files = check_heads(tuple(heads), recipes)
    if workers is None:
        workers = default_workers() if device == "cpu" else 1
    started = time.perf_counter()
    with atomic_dir(out) as tmp_dir:
        tmp = Path(tmp_dir)
        data = ensure_synthetic_data(
            Path(data_dir).absolute() / chosen.folder, chosen.synth, progress
        )
        identification_images = identification_split(chosen.synth)
        tasks = [
            HeadRun(
                head,
                recipe,
                tmp / "runs" / head,
                data,
                chosen.overrides,
                device,
                identification_images,
            )
            for head, recipe in zip(heads, recipe_files, strict=True)
        ]
        log.info(
            "training %s: %d at a time, %d intra-op thread each, deterministic algorithms",
            ", ".join(heads),
            min(workers, len(tasks)),
            THREADS_PER_HEAD,
        )
        trained = map_runs(train_and_evaluate, tasks, workers, THREADS_PER_HEAD)
        for entry in trained:
            plateau = entry[schema.PLATEAU]
            log.info(
                "%s: %d epochs, last epoch's loss %+.2f%% (%s), %.0f s",
                entry["head"],
                entry["epochs"],
                100 * (plateau[schema.RELATIVE_CHANGE] or 0.0),
                schema.PLATEAU if plateau[schema.CONVERGED] else "NO PLATEAU",
                entry["seconds"],
            )
        report = render_report([str(task.run_dir) for task in tasks], str(tmp))
        summary = {
            "size": size,
            "device": device,
            "seconds": round(time.perf_counter() - started, 1),
            "workers": min(workers, len(tasks)),
            "threads_per_head": THREADS_PER_HEAD,
            "data": str(data),
            "synth": asdict(chosen.synth),
            "heads": list(heads),
            "training": trained,
        }
        write_json(tmp / "quickstart.json", summary)
    return out / Path(report).name
