"""The study's presets: sizes for the Fashion-MNIST (idx) study and the synthetic face study.

``synth-faces`` makes its data with ``facebench data synth`` (training identities with held-out
images in test.rec, open-set bins of other identities) plus an open pack of further identities
scored on all its pairs (>= 100,000 impostor pairs, so TAR@FAR=1e-4 rests on >= 10 / FAR); the
heads of :data:`facebench.study.heads.FACE_HEADS`; recipes/study/synth_faces.yaml (tiny_face at
32x32 on CPU).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from facebench.data.synth.dataset import SynthConfig
from facebench.errors import DataError
from facebench.study import plan

log = logging.getLogger(__name__)

#: Face study sizes: images per identity carved out of the training pack for validation and
#: fitted by the tuning runs (None: all the rest), epochs, training images every run sees at
#: least, seeds of the table, seeds per γ-sweep point, grid points tuned per head (None: all),
#: seeds per tuning configuration, grid steps added beyond an edge.
FACE_SIZES = {
    "full": {
        "val_per_class": 2,
        "fit_per_class": 8,
        "epochs": 15.0,
        "min_images": 1,
        "seeds": 5,
        "sweep_seeds": 2,
        "grid_points": None,
        "tuning_seeds": 2,
        "grid_extension": 1,
    },
    "quick": {
        "val_per_class": 1,
        "fit_per_class": 3,
        **plan.QUICK_SCHEDULE,
    },
}


@dataclass(frozen=True)
class SynthFaces:
    """The synthetic face data: `facebench data synth` and an open pack of other identities."""

    synth: SynthConfig
    open_identities: int
    open_images: int

    def make(self, data: Path) -> tuple[Path, Path]:
        """(the synth folder, the open pack) under ``data``: reused when made with these
        settings, else written (a folder of other settings is refused)."""
        from facebench.data.synth.dataset import ensure_synthetic_data

        synth = ensure_synthetic_data(data / "synth", self.synth, progress=False)
        open_pack = data / "open"
        if not (open_pack / "train.rec").is_file():
            write_open_pack(self.synth, open_pack, self.open_identities, self.open_images)
        return synth, open_pack


def write_open_pack(cfg: SynthConfig, out: Path, identities: int, images: int) -> None:
    """A pack of ``identities`` synthetic identities after the training and bin ones
    (``images`` each, image numbers no bin uses), for all-pairs open-set verification."""
    from facebench.data.packs import write_face_pack
    from facebench.data.synth.dataset import encode_identity_images
    from facebench.fileio import atomic_dir

    first = cfg.identities + cfg.val_identities
    numbers = range(4000, 4000 + images)  # bins use 1000+ and 2000+, the quickstart 3000+

    def samples():
        for label in range(identities):
            index = first + label
            jpegs = encode_identity_images(cfg.seed, cfg.image_size, index, numbers, cfg.difficulty)
            for jpeg in jpegs:
                yield label, jpeg

    log.info("writing the open pack: %d identities x %d images", identities, images)
    with atomic_dir(out) as tmp:
        write_face_pack(tmp, samples(), (cfg.image_size, cfg.image_size))


#: The face preset at full and quick size. Full: 1,000 training identities x 20 images (+4
#: held out each), bins of 200 other identities (3,000 pairs), an open pack of 500 further
#: identities x 4 images (2,000 images: 3,000 genuine and 1,996,000 impostor pairs, so TAR at
#: FAR 1e-5 rests on >= 10 / FAR; scoring them costs ~6 CPU-s per run, 8 M pairs cost 25).
SYNTH_FACES = {
    "full": SynthFaces(
        SynthConfig(
            identities=1000,
            images_per_identity=20,
            test_images_per_identity=4,
            val_identities=200,
            val_images_per_identity=6,
            pairs=3000,
            image_size=32,
        ),
        open_identities=500,
        open_images=4,
    ),
    "quick": SynthFaces(
        SynthConfig(
            identities=40,
            images_per_identity=6,
            test_images_per_identity=2,
            val_identities=20,
            val_images_per_identity=4,
            pairs=200,
            image_size=32,
        ),
        open_identities=50,
        open_images=3,
    ),
}


def check_data_folder(data: Path) -> None:
    """DataError when ``data`` is a file (the preset writes folders under it)."""
    if data.exists() and not data.is_dir():
        raise DataError(f"--data {data}: is a file; give a folder for the preset's data")
