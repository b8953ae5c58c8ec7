"""The main job on its embedded default: synthetic faces -> four heads -> evaluation -> report.

`run_quickstart` generates the synthetic pack and open-set bins when they are missing, trains
`bce_u` (with margin), ArcFace, CosFace and SoftMax from `recipes/synth/`, evaluates each with
the 10-fold protocol, the single global threshold, TAR@FAR, the uniform metrics and open-set
identification in a faiss gallery, and renders a report. Everything is written under a
temporary folder beside ``out`` and renamed at the end, so a failure leaves no half-written
report and never touches an earlier run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facebench.data.synthetic import SynthConfig
from facebench.errors import ConfigError, DataError
from facebench.fileio import atomic_dir, check_output_dir, write_json

log = logging.getLogger(__name__)

#: The heads the quickstart compares, in report order (recipes/synth/<name>.yaml).
HEADS = ("bce_u", "arcface", "cosface", "softmax")

#: Images per held-out identity rendered for the open-set identification gallery and probes.
IDENTIFICATION_IMAGES = 4
_IDENTIFICATION_STREAM = 3000  # image numbers no bin uses (bins use 1000+ and 2000+)


@dataclass(frozen=True)
class QuickstartSize:
    """How big the quickstart is: the synthetic data and how long each head trains."""

    synth: SynthConfig
    epochs: float
    batch_size: int


#: Faces are drawn at 56x56: on 2 CPU cores the tiny backbone trains about four times faster
#: than at 112x112 and, in the same minutes, separates held-out identities far better.
SIZES = {
    "default": QuickstartSize(
        SynthConfig(identities=200, images_per_identity=20, val_identities=100, image_size=56),
        6,
        128,
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
        1,
        32,
    ),
}


def default_recipes_dir() -> Path:
    """`recipes/` of the source checkout this package is installed from."""
    return Path(__file__).resolve().parent.parent / "recipes"


def ensure_synthetic_data(data_dir: Path, cfg: SynthConfig, progress: bool = True) -> Path:
    """The synthetic dataset for ``cfg`` under ``data_dir``: reused if present, else written."""
    from facebench.data.synthetic import write_synthetic_dataset

    summary = data_dir / "synth.json"
    if summary.exists():
        try:
            stored = json.loads(summary.read_text())["config"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{summary}: unreadable synthetic data summary ({exc})") from exc
        if stored == asdict(cfg):
            log.info("using the synthetic data in %s", data_dir)
            return data_dir
        raise DataError(
            f"{data_dir}: holds synthetic data made with other settings; "
            "pass another --data directory or remove it"
        )
    workers = min(2, os.cpu_count() or 1)
    write_synthetic_dataset(str(data_dir), cfg, workers=workers, progress=progress)
    return data_dir


def identification_split(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Open-set gallery and probes from the held-out identities (never seen in training).

    The first half of the identities is enrolled with one image each; their other images are
    mated probes, every image of the second half is a non-mated probe.
    Returns ``(gallery_images, gallery_ids, probe_images, probe_ids)`` as uint8 RGB arrays.
    """
    from facebench.data.images import decode_image
    from facebench.data.synthetic import encode_identity_images

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


def run_quickstart(
    out: str | os.PathLike,
    data_dir: str | os.PathLike,
    size: str = "default",
    device: str = "cpu",
    recipes_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Run the whole quickstart into ``out`` (must not exist); return the path of report.md.
    ``progress``: draw the progress bars of data synthesis, training and evaluation."""
    from facebench.report import render_report
    from facebench.train import train

    if size not in SIZES:
        raise ConfigError(f"quickstart: unknown size {size!r}; choose from {sorted(SIZES)}")
    chosen = SIZES[size]
    out = Path(out).absolute()
    recipes = Path(recipes_dir) if recipes_dir else default_recipes_dir()
    check_output_dir(out, new=True)
    check_output_dir(data_dir, option="--data")
    recipe_files = [recipes / "synth" / f"{head}.yaml" for head in HEADS]
    for recipe in recipe_files:
        if not recipe.is_file():
            raise ConfigError(f"{recipe}: quickstart recipe missing (see --recipes)")
    started = time.perf_counter()
    with atomic_dir(out) as tmp_dir:
        tmp = Path(tmp_dir)
        data = ensure_synthetic_data(
            Path(data_dir).absolute() / f"synth-{size}", chosen.synth, progress
        )
        identification_images = identification_split(chosen.synth)
        runs = []
        for head, recipe in zip(HEADS, recipe_files, strict=True):
            log.info("training %s", head)
            result = train(
                recipe,
                tmp / "runs" / head,
                data_root=data.parent,
                device=device,
                overrides=[
                    f"data.train={data.name}",
                    f"train.epochs={chosen.epochs}",
                    f"train.batch_size={chosen.batch_size}",
                    "eval.bins=[]",
                ],
                progress=progress,
            )
            evaluate_run(result.run_dir, data, identification_images, device, progress)
            runs.append(result.run_dir)
        report = render_report([str(r) for r in runs], str(tmp))
        summary = {
            "size": size,
            "device": device,
            "seconds": round(time.perf_counter() - started, 1),
            "data": str(data),
            "synth": asdict(chosen.synth),
            "heads": list(HEADS),
        }
        write_json(tmp / "quickstart.json", summary)
    return out / Path(report).name
