"""Synthetic datasets: seeded draws rendered and encoded (on a process pool for large sets),
written as train and test packs and open-set verification bins."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facebench.data.bins import write_verification_bin
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack
from facebench.data.synth.appearance import Identity, sample_identity, sample_variation
from facebench.data.synth.render import FaceRenderer
from facebench.errors import ConfigError, DataError
from facebench.fileio import atomic_dir, write_text
from facebench.procs import worker_init

log = logging.getLogger(__name__)

SUMMARY_FILE = "synth.json"

# identity / image random streams
_IDENTITY, _TRAIN_IMAGE, _PAIRS = 0, 1, 2


@dataclass(frozen=True)
class SynthConfig:
    """What `facebench data synth` makes; see :func:`write_synthetic_dataset`."""

    identities: int = 100
    images_per_identity: int = 20
    test_images_per_identity: int = 4
    val_identities: int = 100
    val_images_per_identity: int = 6
    pairs: int = 600
    difficulty: float = 1.0
    hard_difficulty: float = 1.5
    image_size: int = 112
    seed: int = 0

    def check(self) -> None:
        """ConfigError for values that cannot make a dataset."""
        if self.identities < 2 or self.images_per_identity < 1:
            raise ConfigError("synth: need at least 2 identities and 1 image per identity")
        if self.test_images_per_identity < 0:
            raise ConfigError("synth: test images per identity must be >= 0")
        if self.pairs <= 0 or self.pairs % 20:
            raise ConfigError(
                f"synth: pairs must be a positive multiple of 20 (10 folds x half same, half "
                f"different), got {self.pairs}"
            )
        if self.val_identities < 2 or self.val_images_per_identity < 2:
            raise ConfigError("synth: need at least 2 val identities with 2 images each")
        if self.difficulty < 0 or self.hard_difficulty < 0:
            raise ConfigError("synth: difficulty must be >= 0")
        if self.image_size < 32:
            raise ConfigError(f"synth: image size must be at least 32, got {self.image_size}")


def _identity(seed: int, index: int) -> Identity:
    return sample_identity(np.random.default_rng([seed, _IDENTITY, index]))


def render_identity_images(
    renderer: FaceRenderer, seed: int, index: int, images: range, difficulty: float
) -> list[np.ndarray]:
    """RGB images number ``images`` of identity ``index`` (the same images for any caller)."""
    ident = _identity(seed, index)
    out = []
    for number in images:
        rng = np.random.default_rng([seed, _TRAIN_IMAGE, index, number, round(difficulty * 1000)])
        out.append(renderer.render(ident, sample_variation(rng, difficulty)))
    return out


_RENDERERS: dict[tuple[int, int], FaceRenderer] = {}


def encode_identity_images(
    seed: int, size: int, index: int, images: range, difficulty: float
) -> list[bytes]:
    """JPEG bytes of :func:`render_identity_images`; quality drops with difficulty."""
    renderer = _RENDERERS.get((size, seed))
    if renderer is None:
        renderer = _RENDERERS.setdefault((size, seed), FaceRenderer(size, seed))
    rng = np.random.default_rng([seed, _TRAIN_IMAGE + 10, index, images.start])
    lowest = max(40, 95 - int(35 * difficulty))
    return [
        encode_image(rgb, ".jpg", quality=int(rng.integers(lowest, 96)))
        for rgb in render_identity_images(renderer, seed, index, images, difficulty)
    ]


def _encode_task(task: tuple) -> list[bytes]:
    return encode_identity_images(*task)


# Below this many images a pool costs more (process start-up, imports) than it saves.
_MIN_IMAGES_FOR_POOL = 4000


def _render_all(tasks: list[tuple], workers: int, desc: str | None) -> Iterator[list[bytes]]:
    """:func:`encode_identity_images` of each task, in order, on up to ``workers`` processes,
    under a progress bar named ``desc`` (None: no bar).

    Workers are spawned, not forked: a fork after OpenCV has started its thread pool deadlocks.
    """
    progress = tqdm(total=len(tasks), desc=desc, unit="id", disable=desc is None)
    images = sum(len(task[3]) for task in tasks)
    if workers <= 1 or images < _MIN_IMAGES_FOR_POOL:
        for task in tasks:
            yield _encode_task(task)
            progress.update()
    else:
        context = mp.get_context("spawn")
        with context.Pool(workers, initializer=worker_init, initargs=(os.getpid(),)) as pool:
            for result in pool.imap(_encode_task, tasks, chunksize=4):
                yield result
                progress.update()
    progress.close()


def _pack_samples(cfg: SynthConfig, images: range, workers: int, desc: str | None):
    """``(label, jpeg)`` for every training identity's images ``images``, label-contiguous."""
    size, diff = cfg.image_size, cfg.difficulty
    tasks = [(cfg.seed, size, label, images, diff) for label in range(cfg.identities)]
    for label, jpegs in enumerate(_render_all(tasks, workers, desc)):
        for jpeg in jpegs:
            yield label, jpeg


def verification_pairs(
    rng: np.random.Generator, identities: int, images_per_identity: int, pairs: int
) -> tuple[list[tuple[tuple[int, int], tuple[int, int]]], list[bool]]:
    """LFW layout: 10 contiguous folds, each half genuine then half impostor pairs.

    Pairs name ``(identity, image)``; genuine pairs are two different images of one identity.
    """
    half = pairs // 20
    out, issame = [], []
    for _ in range(10):
        for _ in range(half):
            ident = int(rng.integers(identities))
            a, b = rng.choice(images_per_identity, 2, replace=False)
            out.append(((ident, int(a)), (ident, int(b))))
            issame.append(True)
        for _ in range(half):
            x, y = rng.choice(identities, 2, replace=False)
            a, b = rng.integers(images_per_identity, size=2)
            out.append(((int(x), int(a)), (int(y), int(b))))
            issame.append(False)
    return out, issame


def write_open_set_bin(
    cfg: SynthConfig,
    path: str,
    difficulty: float,
    stream: int,
    workers: int = 1,
    first_identity: int | None = None,
    progress: bool = True,
) -> None:
    """An open-set bin of ``cfg.val_identities`` held-out identities from ``first_identity``
    (default: the ones right after the training identities), images numbered from
    ``stream * 1000``, pairs drawn from ``(cfg.seed, stream)``."""
    first = cfg.identities if first_identity is None else first_identity
    if first < cfg.identities:
        raise ConfigError(f"synth: open-set identities start at {first}, inside the training set")
    images = range(stream * 1000, stream * 1000 + cfg.val_images_per_identity)
    tasks = [
        (cfg.seed, cfg.image_size, first + j, images, difficulty) for j in range(cfg.val_identities)
    ]
    rendered = list(_render_all(tasks, workers, os.path.basename(path) if progress else None))
    rng = np.random.default_rng([cfg.seed, _PAIRS, stream])
    pairs, issame = verification_pairs(
        rng, cfg.val_identities, cfg.val_images_per_identity, cfg.pairs
    )
    flat = [rendered[ident][img] for pair in pairs for ident, img in pair]
    write_verification_bin(path, flat, issame)


def write_synthetic_dataset(
    out_dir: str, cfg: SynthConfig, workers: int = 1, progress: bool = True
) -> dict:
    """Write train pack, test pack (same identities, other images) and open-set bins to out_dir.

    Files: ``train.rec/.idx``, ``property``, ``test.rec/.idx``, ``synth_val.bin``,
    ``synth_hard.bin`` and ``synth.json`` (the config and counts). Returns that summary.
    ``out_dir`` must not exist: it is written under a temporary name and renamed when complete.
    Output is byte-identical for a config, whatever ``workers`` is. ``progress``: draw bars.
    """
    cfg.check()
    size = (cfg.image_size, cfg.image_size)
    n = cfg.images_per_identity
    with atomic_dir(out_dir) as tmp:
        train = write_face_pack(
            tmp, _pack_samples(cfg, range(n), workers, "train" if progress else None), size
        )
        summary = {"config": asdict(cfg), "train_images": train[0], "classes": train[1]}
        if cfg.test_images_per_identity:
            images = range(n, n + cfg.test_images_per_identity)
            samples = _pack_samples(cfg, images, workers, "test" if progress else None)
            test = write_face_pack(tmp, samples, size, name="test", property_file=False)
            summary["test_images"] = test[0]
        bins = {"synth_val.bin": (cfg.difficulty, 1), "synth_hard.bin": (cfg.hard_difficulty, 2)}
        for name, (difficulty, stream) in bins.items():
            write_open_set_bin(
                cfg, os.path.join(tmp, name), difficulty, stream, workers, progress=progress
            )
        summary["bins"] = {name: cfg.pairs for name in bins}
        write_text(os.path.join(tmp, SUMMARY_FILE), json.dumps(summary, indent=2))
    log.debug("wrote %s: %d train images of %d identities", out_dir, train[0], train[1])
    return summary


def ensure_synthetic_data(data_dir: Path, cfg: SynthConfig, progress: bool = True) -> Path:
    """The synthetic dataset for ``cfg`` under ``data_dir``: reused if present, else written."""
    summary = data_dir / SUMMARY_FILE
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
