"""benchmarks/uniform_study.py: bad --idx input is one line naming the file; nothing is written."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from facebench.data.idx_ubyte import write_idx

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "uniform_study.py"
spec = importlib.util.spec_from_file_location("uniform_study", SCRIPT)
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def _idx_set(root: Path, train_labels: int = 12) -> None:
    rng = np.random.default_rng(0)
    for split, images, labels in (("train", 12, train_labels), ("t10k", 8, 8)):
        write_idx(
            root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (images, 6, 6), np.uint8)
        )
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", (np.arange(labels) % 4).astype(np.uint8))


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("missing", "t10k labels idx file"),
        ("counts", "train-labels-idx1-ubyte.gz: 11 labels for 12 images"),
        ("no_dir", "no such directory"),
    ],
)
def test_bad_idx_input_is_one_line_and_leaves_out_untouched(tmp_path, capsys, damage, named):
    src = tmp_path / "idx"
    src.mkdir()
    _idx_set(src, train_labels=11 if damage == "counts" else 12)
    if damage == "missing":
        (src / "t10k-labels-idx1-ubyte.gz").unlink()
    idx = str(tmp_path / "nowhere") if damage == "no_dir" else str(src)
    out = tmp_path / "out"
    assert study.main(["--quick", "--idx", idx, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facebench: error: ") and named in err and "\n" not in err
    assert not out.exists()


def test_bad_sizes_and_heads_are_refused_before_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert study.main(["--quick", "--seeds", "0", "--out", str(out)]) == 2
    assert "--seeds: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert study.main(["--quick", "--heads", "softmax,nope", "--out", str(out)]) == 2
    assert "unknown head 'nope'" in capsys.readouterr().err
    assert not out.exists()
