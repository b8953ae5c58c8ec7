"""What a study reads: an idx set (Fashion-MNIST), or a face training pack with held-out images
of its identities and open-set targets of other identities.

Both kinds are checked in full before anything is written (:meth:`check`) and then laid out
once under the study's data folder (:meth:`prepare`) in the layout :mod:`facebench.study.runs`
trains from: ``closed/fit`` and ``closed/val`` (carved from the training pack for tuning),
``closed/train`` and ``closed/test``. A face study measures its open-set targets with the closed
run's model (one training per head and seed; :func:`measure_targets`): verification bins
(10-fold accuracy), an IJB-layout folder (1:1 TAR@FAR) and a pack of other identities scored on
all its pairs (TAR@FAR; the synthetic preset's large open set: 4,000 images give 8 M impostor
pairs, where a bin would hold two images per pair).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from facebench import schema
from facebench.errors import ConfigError, DataError
from facebench.fileio import atomic_dir, read_json, write_json
from facebench.schema import rate_key
from facebench.study.report import OPEN_SET_PARTITIONS

#: FARs a face study judges where its open set holds enough impostors (measure.supported_fars).
FACE_FARS = (1e-3, 1e-4, 1e-5)
#: The largest open pack scored on all pairs (n (n - 1) / 2 scores held in memory).
MAX_OPEN_PACK_IMAGES = 12_000
TARGETS_FILE = "targets.json"


class IdxInputs:
    """An MNIST-format idx set: closed set and held-out classes (facebench.study.data)."""

    open_set = OPEN_SET_PARTITIONS

    def __init__(self, idx_dir: str):
        self.idx_dir = idx_dir

    def check(self, size: dict, base_recipe: Path, heads) -> dict:
        """``size`` with its scaled sizes; DataError on a bad set."""
        from facebench.study.data import check_idx_set, scaled_sizes

        return scaled_sizes(size, check_idx_set(self.idx_dir))

    def prepare(self, data_dir: Path, size: dict) -> dict:
        """Convert the set into ``data_dir`` (once); its split.json."""
        from facebench.study.data import prepare_data

        return prepare_data(self.idx_dir, data_dir, size)

    def study_heads(self, heads):
        """The heads as given (closed- and open-set runs)."""
        return heads

    def impostors(self, size: dict) -> int:
        """Impostor pairs of each held-out-class bin (they decide the TAR tests)."""
        from facebench.study.data import impostor_pairs

        return impostor_pairs(size)

    def family(self, size: dict):
        """(metrics, claims) of the report: the idx study's."""
        from facebench.study.report import CLAIMS, METRICS

        return METRICS, CLAIMS


def _pack_files(path: str, option: str) -> tuple[str, str, str | None]:
    """(rec, idx, property or None) of a pack folder or .rec file; DataError naming ``option``."""
    from facebench.data.packs import _pack_paths, check_pack_folder

    if not os.path.exists(path):
        raise DataError(f"{option} {path}: no such pack (give a pack folder or a .rec file)")
    check_pack_folder(path)
    return _pack_paths(path)


def _identity_pack(path: str, option: str):
    """The FacePack at ``path``; DataError when it has no identity records (labels by range)."""
    from facebench.data.packs import FacePack

    _pack_files(path, option)
    pack = FacePack(path)
    if pack.meta is None:
        raise DataError(
            f"{option} {path}: the pack has no identity records (InsightFace header record 0 "
            "with per-class key ranges); rewrite it with `facebench data from-folder`"
        )
    return pack


def _image_size(pack) -> tuple[int, int]:
    """(H, W) of the pack's first image."""
    return tuple(pack.read_sample(int(pack.image_keys[0]))[0].shape[:2])


def _class_sizes(pack) -> np.ndarray:
    """Images per class, from the identity records."""
    return (pack.identities[:, 1] - pack.identities[:, 0]).astype(np.int64)


def supported_fars(impostors: int) -> tuple[float, ...]:
    """The :data:`FACE_FARS` a set of ``impostors`` pairs reports TAR at (the package's rule)."""
    from facebench.study.measure import supported_fars as rule

    return rule(impostors, FACE_FARS)


def open_pack_impostors(pack) -> int:
    """Impostor pairs among all pairs of a pack's images."""
    sizes = _class_sizes(pack)
    total = int(sizes.sum())
    return total * (total - 1) // 2 - int((sizes * (sizes - 1) // 2).sum())


@dataclass(frozen=True)
class FaceInputs:
    """A face training pack, a pack of held-out images of its identities, and open targets."""

    train: str
    closed_test: str
    bins: tuple[str, ...] = ()
    ijb: str | None = None
    open_pack: str | None = None
    #: how claims.md's open-set intervals are made
    open_set: ClassVar[str] = (
        "Open set: each seed's closed-set model measured on the targets of other identities "
        "(the same pairs for every head); paired t interval over seeds."
    )

    def check(self, size: dict, base_recipe: Path, heads) -> dict:
        """Every input readable and consistent and the base recipe fitting the pack
        (DataError / ConfigError naming the option otherwise); returns ``size`` with the pack's
        classes and image size and ``targets``: the open targets with their impostor pairs."""
        from facebench.data.bins import read_verification_bin

        train = _identity_pack(self.train, "--train")
        classes, shape = len(train.identities), _image_size(train)
        if classes < 2:
            raise DataError(f"--train {self.train}: {classes} identity; the study needs >= 2")
        test = _identity_pack(self.closed_test, "--closed-test")
        if len(test.identities) > classes:
            raise DataError(
                f"--closed-test {self.closed_test}: {len(test.identities)} identities, more than "
                f"the {classes} of --train (it must hold other images of the training identities)"
            )
        if _image_size(test) != shape:
            raise DataError(
                f"--closed-test {self.closed_test}: images of "
                f"{_image_size(test)}, --train has {shape}"
            )
        smallest = int(_class_sizes(train).min())
        if smallest <= size["val_per_class"]:
            raise DataError(
                f"--train {self.train}: an identity has {smallest} images; --val-per-class "
                f"{size['val_per_class']} leaves none to fit (lower it)"
            )
        if not (self.bins or self.ijb or self.open_pack):
            raise DataError("give an open set of other identities: --bin, --ijb or --open-pack")
        targets: dict = {"bins": [], "ijb": None, "open_pack": None}
        for path in self.bins:
            if not os.path.isfile(path):
                raise DataError(f"--bin {path}: no such file (give a verification .bin)")
            read_verification_bin(path)
            targets["bins"].append(os.path.abspath(path))
        if self.ijb is not None:
            from facebench.eval.ijb import read_ijb_meta

            if not os.path.isdir(os.path.join(self.ijb, "meta")):
                raise DataError(f"--ijb {self.ijb}: no meta/ folder (give an IJB-layout root)")
            meta = read_ijb_meta(self.ijb)
            impostors = int((~meta.labels).sum())
            targets["ijb"] = {"root": os.path.abspath(self.ijb), "impostors": impostors}
        if self.open_pack is not None:
            pack = _identity_pack(self.open_pack, "--open-pack")
            if len(pack) > MAX_OPEN_PACK_IMAGES:
                raise DataError(
                    f"--open-pack {self.open_pack}: {len(pack)} images; all pairs are scored in "
                    f"memory, so at most {MAX_OPEN_PACK_IMAGES} (use --ijb for larger sets)"
                )
            targets["open_pack"] = {
                "path": os.path.abspath(self.open_pack),
                "impostors": open_pack_impostors(pack),
            }
        size = {**size, "classes": classes, "image_size": list(shape), "targets": targets}
        rest = _class_sizes(train) - size["val_per_class"]
        fit = int(np.minimum(rest, size["fit_per_class"] or rest.max()).sum())
        check_recipe_fits(base_recipe, heads, size, fit)
        return size

    def _absolute(self) -> dict:
        """The inputs with absolute paths (the data folder's stamp: a resumed study may name
        them relative to another folder)."""
        fields = dataclasses.asdict(self)
        for name, value in fields.items():
            if isinstance(value, str):
                fields[name] = os.path.abspath(value)
            elif isinstance(value, tuple):
                fields[name] = tuple(os.path.abspath(v) for v in value)
        return fields

    def prepare(self, data_dir: Path, size: dict) -> dict:
        """The study's data folder (once; a folder of other inputs or sizes is refused)."""
        stamp = {"inputs": self._absolute(), **{k: size[k] for k in _STAMP_KEYS}}
        if data_dir.exists():
            split = read_json(data_dir / "split.json")
            if split.get("stamp") != json_ready(stamp):
                raise DataError(f"{data_dir}: holds data of other inputs or sizes; use a new --out")
            return split
        with atomic_dir(data_dir) as tmp:
            closed = Path(tmp) / "closed"
            _link_pack(self.train, closed / "train")
            _link_pack(self.closed_test, closed / "test")
            counts = _carve(self.train, closed, size["val_per_class"], size["fit_per_class"])
            split = {"stamp": json_ready(stamp), "counts": counts}
            write_json(Path(tmp) / "split.json", split)
            write_json(Path(tmp) / TARGETS_FILE, size["targets"])
        return split

    def study_heads(self, heads):
        """Every head trains once per seed, on the closed set; its model is also measured on the
        open targets, so every head has the one task."""
        return tuple(dataclasses.replace(h, tasks=("closed",)) for h in heads)

    def impostors(self, size: dict) -> None:
        """None: the TAR tests are chosen by :meth:`family`."""
        return None

    def family(self, size: dict):
        """(metrics, claims) of the report: the closed-set ones, then each open target's."""
        from facebench.study.report import CLAIMS, METRICS

        metrics = [m for m in METRICS if m[2] == "closed"]
        claims = [c for c in CLAIMS if any(c[1] == m[0] for m in metrics)]
        for field, column in target_fields(size["targets"]):
            metrics.append((field, column, "closed"))
            claims.append((f"(5) open set, {column}", field, True))
        return tuple(metrics), tuple(claims)


_STAMP_KEYS = ("val_per_class", "fit_per_class")


def json_ready(value):
    """``value`` as it reads back from JSON (tuples as lists)."""
    import json

    return json.loads(json.dumps(value))


def _link_pack(source: str, folder: Path) -> None:
    """``folder`` as a pack folder whose files link to ``source``'s (a folder or a .rec)."""
    from facebench.data.packs import _pack_paths

    rec, idx, prop = _pack_paths(source)
    folder.mkdir(parents=True)
    os.symlink(os.path.abspath(rec), folder / "train.rec")
    os.symlink(os.path.abspath(idx), folder / "train.idx")
    if prop is not None and os.path.basename(rec) == "train.rec":
        os.symlink(os.path.abspath(prop), folder / "property")


def _carve(train: str, closed: Path, val_per_class: int, fit_per_class: int | None) -> dict:
    """closed/val (``val_per_class`` random images per identity, seed 0) and closed/fit
    (``fit_per_class`` random images of each identity's rest; None: all); their counts."""
    from facebench.data.idx_packs import per_class_subset
    from facebench.data.packs import FacePack, write_face_pack

    pack = FacePack(train)
    sizes = _class_sizes(pack)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    keys = np.concatenate([np.arange(a, b) for a, b in pack.identities])
    rng = np.random.default_rng(0)
    in_val = np.zeros(len(labels), bool)
    in_val[per_class_subset(labels, val_per_class, rng)] = True
    fit = np.flatnonzero(~in_val)
    fit = fit[per_class_subset(labels[fit], fit_per_class, rng)]
    shape = _image_size(pack)
    counts = {"closed_train": len(pack)}
    for name, rows in (("fit", fit), ("val", np.flatnonzero(in_val))):
        (closed / name).mkdir()
        samples = ((int(labels[r]), pack.read_encoded(int(keys[r]))[0]) for r in rows)
        counts[f"closed_{name}"] = write_face_pack(str(closed / name), samples, shape)[0]
    return counts


def target_fields(targets: dict) -> list[tuple[str, str]]:
    """(result field, column name) of every open-set figure the targets give, in report order."""
    from facebench.eval.verify_bins import bin_name

    out = [
        (f"{bin_name(b)}_accuracy_10fold", f"{bin_name(b)} 10-fold acc") for b in targets["bins"]
    ]
    for kind, label in (("open_pack", "open pack"), ("ijb", "IJB")):
        if targets.get(kind):
            for far in supported_fars(targets[kind]["impostors"]):
                out.append(
                    (f"{kind}_tar_at_far_{rate_key(far)}", f"{label} TAR@FAR={rate_key(far)}")
                )
    return out


def measure_targets(model_path: Path, data_dir: Path, report_dir: Path, device: str) -> dict:
    """The open-set figures of a model (embedded on ``device``) on the data folder's targets
    (none for an idx study)."""
    path = data_dir / TARGETS_FILE
    if not path.is_file():
        return {}
    from facebench.embed import load_embedder
    from facebench.eval.verify_bins import bin_name, verification_report, write_verification_report

    targets = read_json(path)
    embedder = load_embedder(str(model_path), device)
    out = {}
    for b in targets["bins"]:
        report = verification_report(embedder, b, batch_size=256, progress=False)
        write_verification_report(report_dir, report)
        out[f"{bin_name(b)}_accuracy_10fold"] = report[schema.ACCURACY_10FOLD_MEAN]
    tars = {}
    if targets.get("open_pack"):
        tars["open_pack"] = all_pairs_report(embedder, targets["open_pack"]["path"])
    if targets.get("ijb"):
        from facebench.eval.ijb import evaluate_ijb

        tars["ijb"] = evaluate_ijb(targets["ijb"]["root"], embedder, one_to_n=False, progress=False)
    for kind, report in tars.items():
        write_json(report_dir / f"{kind}.json", report)
        for far in supported_fars(targets[kind]["impostors"]):
            out[f"{kind}_tar_at_far_{rate_key(far)}"] = report[schema.TAR_AT_FAR].get(rate_key(far))
    return out


def all_pairs_report(embedder, pack_path: str) -> dict:
    """Verification on every pair of a pack's images (flip-sum, L2-normalized embeddings):
    the single-threshold report of :func:`facebench.eval.verification.threshold_report`."""
    from facebench.embed import embed_images
    from facebench.embed.sources import PackSource
    from facebench.eval.verification import check_labels, threshold_report

    images = PackSource(pack_path)
    unit = embed_images(embedder, images, 256, flip_sum=True, normalize=True, progress=False)
    labels = np.asarray(images.labels)
    first, second = np.triu_indices(len(labels), 1)
    cos = np.einsum("ij,ij->i", unit[first], unit[second]).astype(np.float64)
    issame = check_labels(labels[first] == labels[second], pack_path)
    report = {"name": "open_pack", "pack": pack_path, "images": len(labels)}
    report.update(threshold_report(cos, issame))
    return report


def check_recipe_fits(recipe_path: Path, heads, size: dict, fit_images: int) -> None:
    """ConfigError when the base recipe cannot train on the pack: its batch is larger than the
    ``fit_images`` the tuning runs fit, its backbone refuses the pack's image size, or a head
    cannot be built for its identities (both on the meta device)."""
    import torch

    from facebench.config import load_recipe
    from facebench.heads import build_head
    from facebench.models import build_backbone

    recipe = load_recipe(recipe_path)
    if recipe.train.batch_size > fit_images:
        raise ConfigError(
            f"--recipe {recipe_path}: train.batch_size {recipe.train.batch_size} is larger than "
            f"the {fit_images} images the tuning runs fit (lower it, or give more images)"
        )
    height, width = size["image_size"]
    model = recipe.model
    with torch.device("meta"):
        backbone = build_backbone(model.backbone, model.embedding_size, **model.options)
        try:
            out = backbone.eval()(torch.zeros(2, 3, height, width))
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"--recipe {recipe_path}: backbone {model.backbone} does not take the pack's "
                f"{height}x{width} images ({first})"
            ) from None
        if tuple(out.shape) != (2, model.embedding_size):
            raise ConfigError(
                f"--recipe {recipe_path}: backbone {model.backbone} maps {height}x{width} images "
                f"to {tuple(out.shape[1:])}, not {model.embedding_size} features"
            )
        for head in heads:
            params = {**recipe.head.params, **head.params}  # as the runs' overrides merge them
            try:
                build_head(head.head, model.embedding_size, size["classes"], **params)
            except (ConfigError, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"--recipe {recipe_path}: head {head.key} on {size['classes']} identities: "
                    f"{exc}"
                ) from None
