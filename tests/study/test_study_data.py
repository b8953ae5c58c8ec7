"""facebench.study.data: validation and fit sizes scale with the class size of any idx set."""

import json

import numpy as np
import pytest

from facebench.data.idx_ubyte import write_idx
from facebench.errors import DataError
from facebench.study.data import check_idx_set, prepare_data, scaled_sizes
from facebench.study.execute import SIZES


def _idx_set(root, per_class: int, test_per_class: int = 6):
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        write_idx(
            root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (10 * n, 8, 8), np.uint8)
        )
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)


def test_fashion_mnist_sizes_scale_with_the_kept_images_per_class():
    labels = np.repeat(np.arange(10), 6000)
    got = scaled_sizes(SIZES["full"], labels)
    assert SIZES["full"]["train_per_class"] == 1000
    assert (got["val_per_class"], got["fit_per_class"]) == (1000 // 6, 1000 // 3)
    assert SIZES["full"]["val_per_class"] is None  # the default is scaled, not fixed


def test_the_smallest_class_and_train_per_class_decide():
    labels = np.concatenate([np.repeat(np.arange(9), 300), np.full(140, 9)])
    got = scaled_sizes(SIZES["full"], labels)
    assert (got["val_per_class"], got["fit_per_class"]) == (140 // 6, 140 // 3)
    capped = scaled_sizes({**SIZES["full"], "train_per_class": 60}, labels)
    assert (capped["val_per_class"], capped["fit_per_class"]) == (10, 20)
    given = scaled_sizes({**SIZES["full"], "val_per_class": 7}, labels)
    assert given["val_per_class"] == 7  # an explicit size is kept
    with pytest.raises(DataError, match=r"a class has 49 training images; .* at least 50"):
        scaled_sizes(SIZES["full"], np.concatenate([labels, np.full(49, 10)]))


@pytest.mark.parametrize("per_class", [50, 140])
def test_a_small_set_converts_with_no_option(tmp_path, per_class):
    src = tmp_path / "idx"
    src.mkdir()
    _idx_set(src, per_class)
    size = scaled_sizes({**SIZES["full"], "pairs_per_half": 5}, check_idx_set(src))
    split = prepare_data(src, tmp_path / "data", size)
    counts = split["counts"]
    assert counts["closed_val"] == 10 * (per_class // 6)
    assert counts["closed_fit"] == 10 * (per_class // 3)
    stamp = json.loads((tmp_path / "data" / "study_size.json").read_text())
    assert stamp["val_per_class"] == per_class // 6
