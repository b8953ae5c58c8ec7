"""Recipe checks before any work (issue 15.6): every eval bin is read and decoded before a model
is built or a run file written, and errors found while building a run name the recipe file."""

import pickle

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack


@pytest.fixture
def root(tmp_path):
    """A data root: a 6-image pack ``p`` and a good 2-pair bin ``ok.bin``."""
    rng = np.random.default_rng(4)
    images = [encode_image(rng.integers(0, 256, (8, 8, 3), np.uint8)) for _ in range(6)]
    write_face_pack(str(tmp_path / "p"), [(i // 2, img) for i, img in enumerate(images)], (8, 8))
    with open(tmp_path / "ok.bin", "wb") as f:
        pickle.dump((images[:4], [True, False]), f, protocol=4)
    with open(tmp_path / "bad.bin", "wb") as f:
        pickle.dump(([*images[:3], b"not an image"], [True, False]), f, protocol=4)
    return tmp_path


def train_error(capsys, root, recipe_text, monkeypatch, built=None):
    """Run `facebench train`; return its one error line (exit 2, no run folder left)."""
    recipe = root / "r.yaml"
    recipe.write_text(recipe_text)
    if built is not None:
        import facebench.models

        def record(*args, **kwargs):
            built.append(args)
            raise AssertionError("a model was built")

        monkeypatch.setattr(facebench.models, "build_backbone", record)
    out = root / "run"
    assert main(["train", str(recipe), "--data", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    line = err.strip().split("\n")[-1]
    assert "Traceback" not in err and line.startswith("facebench: error:"), err
    assert not out.exists()
    return line


BASE = "data:\n  train: p\n  num_workers: 0\nmodel:\n  backbone: tiny_face\n  embedding_size: 8\n"


@pytest.mark.parametrize(
    ("bins", "part"),
    [
        ("[ok.bin, missing.bin]", "missing.bin: cannot read bin"),
        ("[ok.bin, bad.bin]", "bad.bin: image 3: image does not decode"),
    ],
)
def test_eval_bins_are_checked_before_a_model_is_built(root, capsys, monkeypatch, bins, part):
    built = []
    line = train_error(capsys, root, BASE + f"eval:\n  bins: {bins}\n", monkeypatch, built)
    assert part in line and not built


def test_errors_found_while_building_the_run_name_the_recipe(root, capsys, monkeypatch):
    line = train_error(capsys, root, BASE + "train:\n  batch_size: 64\n", monkeypatch)
    assert line.startswith(f"facebench: error: {root / 'r.yaml'}: train.batch_size 64 is larger")


@pytest.mark.parametrize(
    "text",
    [
        "head:\n  name: cosface\n  params:\n    scale: 30\n    scale: 64\n",
        "eval:\n  bins: []\neval:\n  every: 5\n",
    ],
)
def test_duplicate_keys_at_any_depth(root, capsys, monkeypatch, text):
    line = train_error(capsys, root, BASE + text, monkeypatch)
    assert str(root / "r.yaml") in line and "appears twice" in line
