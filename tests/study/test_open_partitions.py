"""The open set over class partitions: partitions fixed by seed, held-out classes kept out of
training, the pair bootstrap and the TAR rule (issue 24, item 5)."""

import numpy as np
import pytest

from facebench.data.bins import read_verification_bin
from facebench.data.idx_ubyte import write_idx
from facebench.data.packs import FacePack
from facebench.errors import DataError
from facebench.study import measure
from facebench.study.data import (
    PARTITION_SEED,
    check_idx_set,
    open_partitions,
    prepare_data,
    scaled_sizes,
)
from facebench.study.execute import SIZES
from facebench.study.heads import DEFAULT_HEADS
from facebench.study.report import declared_family
from facebench.study.stats import pair_variance, paired_verdict

CLASS_VALUE = 20  # every pixel of an image of class c is CLASS_VALUE * c


def test_partitions_are_fixed_by_their_seed_and_differ_between_seeds():
    parts = open_partitions(10, 5)
    assert parts == open_partitions(10, 5)
    assert parts[:3] == open_partitions(10, 3)  # partition k does not depend on the count
    assert [seed for _, seed in parts] == [PARTITION_SEED + k for k in range(5)]
    assert all(len(classes) == 6 and classes == sorted(set(classes)) for classes, _ in parts)
    assert len({tuple(classes) for classes, _ in parts}) == 5
    assert len({c for classes, _ in parts for c in classes}) == 10  # not one fixed subset
    # as many partitions as there are distinct class sets: all of them, none twice
    every = open_partitions(4, 6)  # 2 training classes of 4: C(4, 2) = 6 sets
    assert len({tuple(c) for c, _ in every}) == 6
    with pytest.raises(DataError, match="cannot draw 7 distinct open-set partitions"):
        open_partitions(4, 7)


def _labelled_set(root, per_class: int = 60, test_per_class: int = 12):
    """An idx set whose image pixels tell their class."""
    for split, n in (("train", per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        images = np.repeat(labels * CLASS_VALUE, 8 * 8).reshape(-1, 8, 8).astype(np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)


def _class_of(rgb: np.ndarray) -> int:
    values = np.unique(rgb)
    assert values.size == 1
    return int(values[0]) // CLASS_VALUE


def test_held_out_classes_never_reach_the_training_split_of_their_partition(tmp_path):
    src = tmp_path / "idx"
    src.mkdir()
    _labelled_set(src)
    size = {**SIZES["full"], "pairs_per_half": 4, "seeds": 3}
    split = prepare_data(src, tmp_path / "data", scaled_sizes(size, check_idx_set(src)))
    assert [p["open_train_classes"] for p in split["open_partitions"]] == [
        c for c, _ in open_partitions(10, 3)
    ]
    for k, part in enumerate(split["open_partitions"]):
        train, held = set(part["open_train_classes"]), set(part["held_out_classes"])
        assert not train & held and train | held == set(range(10))
        pack = FacePack(str(tmp_path / "data" / "open" / f"p{k}" / "train"))
        seen = {_class_of(pack.read_image(int(key))) for key in pack.image_keys}
        assert seen == train  # every training class, no held-out one
        assert len(pack.image_keys) == 6 * 60
        vbin = read_verification_bin(str(tmp_path / "data" / "open" / f"p{k}" / "heldout.bin"))
        images = [_class_of(vbin.decode_one(i)) for i in range(len(vbin.images))]
        assert set(images) <= held
        firsts, seconds = images[0::2], images[1::2]
        assert [a == b for a, b in zip(firsts, seconds, strict=True)] == vbin.issame.tolist()


def _bin_scores(pairs_per_half: int, seed: int, shift: float = 0.0):
    """Cosines of a bin in the LFW layout: genuine ~ N(0.5, 0.2), impostor ~ N(0.1, 0.2)."""
    rng = np.random.default_rng(seed)
    issame = np.tile(np.r_[np.ones(pairs_per_half, bool), np.zeros(pairs_per_half, bool)], 10)
    mean = np.where(issame, 0.5 + shift, 0.1)
    return np.clip(rng.normal(mean, 0.2), -1, 1), issame


def test_resamples_keep_the_fold_layout_and_are_shared_by_a_partition():
    _, issame = _bin_scores(7, 0)
    resamples = measure.pair_resamples(issame, 20, seed=5)
    assert (issame[resamples] == issame).all()  # genuine stays genuine, in place
    folds = np.arange(issame.size) // 14
    assert (folds[resamples] == folds).all()  # within its fold
    assert (resamples == measure.pair_resamples(issame, 20, seed=5)).all()
    assert not (resamples == measure.pair_resamples(issame, 20, seed=6)).all()


def test_the_interval_widens_when_a_bin_holds_fewer_pairs():
    diffs = [0.010, 0.014, 0.008, 0.012, 0.011]  # the same per-unit differences
    widths = {}
    for pairs in (300, 30):
        variances = {}
        for unit in range(5):
            a = measure.pair_bootstrap(*_bin_scores(pairs, unit, shift=0.05), partition=unit)
            b = measure.pair_bootstrap(*_bin_scores(pairs, 100 + unit), partition=unit)
            metric = "verification_global_accuracy"
            variances[unit] = pair_variance(a[metric], b[metric])
        claimed = {u: 0.9 + d for u, d in enumerate(diffs)}
        other = dict.fromkeys(range(5), 0.9)
        verdict = paired_verdict(claimed, other, True, variances=variances)
        widths[pairs] = verdict["difference"]["high"] - verdict["difference"]["low"]
        plain = paired_verdict(claimed, other, True)["difference"]
        assert widths[pairs] > plain["high"] - plain["low"]  # pairs widen the seed interval
    # 10x fewer pairs: the pair variance grows about 10x; the interval at least 2x wider
    assert widths[30] > 2 * widths[300]


def test_tar_is_reported_only_where_the_bin_holds_10_over_far_impostors():
    assert measure.supported_fars(9_999) == (1e-2,)
    assert measure.supported_fars(10_000) == (1e-2, 1e-3)
    assert measure.supported_fars(999) == ()
    cos, issame = _bin_scores(300, 0)  # 3,000 impostor pairs
    got = measure.open_metrics(cos, issame)
    assert measure.tar_field(1e-2) in got and measure.tar_field(1e-3) not in got
    tar_claims = {
        c["metric"] for c in declared_family(DEFAULT_HEADS, 3_000) if "tar" in c["metric"]
    }
    assert tar_claims == {measure.tar_field(1e-2)}
    tar_claims = {
        c["metric"] for c in declared_family(DEFAULT_HEADS, 10_000) if "tar" in c["metric"]
    }
    assert tar_claims == {measure.tar_field(1e-2), measure.tar_field(1e-3)}
