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


def train_error(capsys, root, recipe_text, monkeypatch, built=None, sets=()):
    """Run `facebench train` (with ``--set`` items ``sets``); return its one error line (exit 2,
    no run folder left)."""
    recipe = root / "r.yaml"
    recipe.write_text(recipe_text)
    if built is not None:
        import facebench.models

        def record(*args, **kwargs):
            built.append(args)
            raise AssertionError("a model was built")

        monkeypatch.setattr(facebench.models, "build_backbone", record)
    out = root / "run"
    argv = ["train", str(recipe), "--data", str(root), "--out", str(out)]
    assert main([*argv, *(f"--set={item}" for item in sets)]) == 2
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


# Issue 26.5: every recipe value has an allowed range or set, checked before any model is built;
# the error names where the value came from (--set here), the key, the value and what is allowed.
VALUE_CASES = [
    (["train.grad_clip=-1"], ["train.grad_clip must be >= 0 (allowed: [0, 1e+06]), got -1"]),
    (["schedule.gamma=-0.1"], ["schedule.gamma must be > 0 (allowed: (0, 1]), got -0.1"]),
    (["schedule.gamma=1e300"], ["schedule.gamma must be <= 1 (allowed: (0, 1]), got 1e+300"]),
    (
        ["train.batch_size=4", "train.accumulation=4"],
        ["--set train.accumulation=4", "leaves 1 image per micro-batch", "at least 2"],
    ),
    (["optim.betas=[1.5, 0.999]"], ["optim.betas[0] must be < 1 (allowed: [0, 1)), got 1.5"]),
    (
        ["schedule.name=poly", "schedule.power=-1"],
        ["schedule.power must be > 0 (allowed: (0, 100]), got -1"],
    ),
    ([f"train.seed={2**62}"], [f"train.seed must be <= {2**32 - 1}", f"got {2**62}"]),
    (["model.options.widths=abc"], ["model.options.widths must be list[int], got 'abc'"]),
    (
        ["model.options.widths=[100000000, 64, 128]"],
        ["model.options.widths[0] must be <= 4096 (allowed: [1, 4096]), got 100000000"],
    ),
    (
        ["model.options.widths=[4096, 4096, 4096]"],
        ["backbone 'tiny_face'", "more than the limit of 500,000,000"],
    ),
    (["model.options.dropout=2.0"], ["model.options.dropout must be < 1 (allowed: [0, 1))"]),
    (["name=../../escaped"], ["name must be a plain file name", "'../../escaped'"]),
    (["optim.lr=0"], ["optim.lr must be > 0 (allowed: (0, 10]), got 0"]),
    (["schedule.min_lr=0.5"], ["schedule.min_lr 0.5 must be <= optim.lr 0.1"]),
]


@pytest.mark.parametrize(("sets", "parts"), VALUE_CASES, ids=[" ".join(s) for s, _ in VALUE_CASES])
def test_every_recipe_value_is_checked_before_a_model_is_built(
    root, capsys, monkeypatch, sets, parts
):
    built = []
    line = train_error(capsys, root, BASE, monkeypatch, built, sets)
    assert f"error: --set {sets[-1]}" in line or f"and --set {sets[-1]}:" in line, line
    for part in parts:
        assert part in line, line
    assert not built


def test_grad_clip_zero_means_no_clipping(root):
    from facebench.train import train

    def losses(clip: str, run: str) -> list[float]:
        sets = ["train.batch_size=2", "train.max_steps=3", f"train.grad_clip={clip}"]
        recipe = root / "r.yaml"
        recipe.write_text(BASE + "output:\n  tensorboard: false\n")
        result = train(recipe, root / run, data_root=root, overrides=sets, progress=False)
        return result.losses

    # 0 used to scale every gradient by 0: the weights never moved. Both values skip clipping,
    # so both runs are the same computation in this process: the same losses, bit for bit
    assert losses("0", "zero") == losses("null", "off")


# 9**9 "lol"s from 700 bytes, where every head parameter is walked
BILLION_LAUGHS = "head:\n  params:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
BILLION_LAUGHS += "".join(
    f"    {b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("content", "part"),
    [
        ("name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 9)"),
        (b"head:\n  params:\n    x: &x [*x]\n", "aliases (*name) are not allowed"),
        (BILLION_LAUGHS.encode(), "aliases (*name) are not allowed"),
        (b"description: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested deeper than 20 levels"),
    ],
    ids=["latin-1", "self-alias", "billion-laughs", "5000-deep"],
)
def test_hostile_recipe_files_end_in_one_line_at_once(root, capsys, content, part):
    import time

    recipe = root / "h.yaml"
    recipe.write_bytes(content)
    start = time.monotonic()
    assert main(["train", str(recipe), "--data", str(root), "--out", str(root / "run")]) == 2
    assert time.monotonic() - start < 5  # the billion laughs used to run for minutes
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"facebench: error: {recipe}") and part in err, err
    assert not (root / "run").exists()
