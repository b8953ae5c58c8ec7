"""The quickstart's guards: an existing or unwritable output, missing recipes, a full disk."""

import errno
import json
import shutil
from pathlib import Path

import pytest

from facebench import quickstart
from facebench.cli import main
from facebench.errors import ConfigError, DataError, WriteError


def test_existing_output_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "report.md").write_text("an earlier run")
    assert main(["quickstart", "--quick", "--out", str(out), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and str(out) in err[0]
    assert (out / "report.md").read_text() == "an earlier run"


def test_unwritable_parent_is_refused(tmp_path, monkeypatch):
    # os.access answers for the real permissions; simulate a read-only mount for any user.
    monkeypatch.setattr(quickstart.os, "access", lambda path, mode: False)
    with pytest.raises(WriteError, match="not writable"):
        quickstart.run_quickstart(tmp_path / "out", tmp_path / "data", size="quick")
    assert not (tmp_path / "out").exists()


def test_missing_recipe_is_named_before_any_work(tmp_path):
    recipes = tmp_path / "recipes"
    shutil.copytree(quickstart.default_recipes_dir(), recipes)
    (recipes / "synth" / "cosface.yaml").unlink()
    with pytest.raises(ConfigError, match=r"cosface\.yaml"):
        quickstart.run_quickstart(tmp_path / "out", tmp_path / "data", "quick", "cpu", recipes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipes"]


def test_full_disk_gives_one_message_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(quickstart, "ensure_synthetic_data", no_space)
    with pytest.raises(WriteError, match=r"out: cannot write \(No space left on device\)"):
        quickstart.run_quickstart(tmp_path / "out", tmp_path / "data", size="quick")
    assert list(tmp_path.iterdir()) == []


def test_synthetic_data_made_with_other_settings_is_not_overwritten(tmp_path):
    data = tmp_path / "synth-quick"
    data.mkdir()
    (data / "synth.json").write_text('{"config": {"identities": 3}}')
    with pytest.raises(DataError, match="other settings"):
        quickstart.ensure_synthetic_data(data, quickstart.SIZES["quick"].synth)
    assert Path(data / "synth.json").read_text() == '{"config": {"identities": 3}}'


def _table_rows(table: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and {metric: cells} of a Markdown table."""
    lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    return lines[0], {cells[0]: cells[1:] for cells in lines[2:]}


def test_quick_run_prints_the_table_of_its_reports(tmp_path, capsys):
    from facebench.fileio import read_json
    from facebench.models.artifact import load_model_artifact

    out = tmp_path / "qs"
    assert main(["quickstart", "--quick", "--out", str(out), "--data", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    table = printed[: printed.index("report: ")].strip()
    assert table in (out / "report.md").read_text()
    header, rows = _table_rows(table)
    assert header == ["metric", *quickstart.HEADS]
    for i, head in enumerate(quickstart.HEADS):
        run = out / "runs" / head
        for name in ("synth_val", "synth_hard"):
            r = read_json(run / "reports" / f"{name}.json")
            mean, std = 100 * r["accuracy_10fold_mean"], 100 * r["accuracy_10fold_std"]
            assert rows[f"{name}: 10-fold accuracy"][i] == f"{mean:.2f} ± {std:.2f}"
            glob = f"{100 * r['global_accuracy']:.2f} ({r['global_threshold']:.3f})"
            assert rows[f"{name}: global accuracy (τ cos)"][i] == glob
            # 100 impostor pairs per bin: 10 past the threshold at FAR=1e-1, the headline's
            assert rows[f"{name}: TAR@FAR=1e-01"][i] == f"{100 * r['tar_at_far']['1e-01']:.2f}"
        u = read_json(run / "reports" / "uniform.json")
        for label, key in (
            ("sample-wise accuracy", "sample_accuracy"),
            ("uniform accuracy", "uniform_accuracy"),
        ):
            assert rows[label][i] == f"{100 * u[key]:.2f}"
        # one learned threshold everywhere: model.pt, the last log record, uniform.json, table
        learned = load_model_artifact(run / "model.pt")[1]["metadata"]["learned_threshold"]
        logged = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        assert logged[-1]["learned_threshold"] == learned == u["learned_threshold"]
        assert rows["learned threshold"][i] == ("–" if learned is None else f"{learned:.4f}")
        ident = read_json(run / "reports" / "identification.json")
        assert rows["rank-1 (closed set)"][i] == f"{100 * ident['cmc']['1']:.2f}"
    # only bce_u learns one threshold (SoftMax's per-class biases are not one)
    assert rows["learned threshold"][0] != "–" and rows["learned threshold"][1:] == ["–"] * 3


@pytest.mark.parametrize(
    "heads, message",
    [
        (["bce_u", "nosuchhead"], "unknown head 'nosuchhead'; registered heads: "),
        (["cosface", "cosface"], "a head is named twice"),
        (["normsoftmax"], "normsoftmax.yaml: quickstart recipe missing"),
    ],
)
def test_heads_are_checked_before_any_work(tmp_path, capsys, heads, message):
    out, data = tmp_path / "out", tmp_path / "data"
    assert (
        main(["quickstart", "--quick", "--out", str(out), "--data", str(data), "--heads", *heads])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        quickstart.run_quickstart(tmp_path / "out", tmp_path / "data", "quick", workers=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", sorted(quickstart.SIZES))
def test_every_size_ends_training_on_the_study_lr_tail(size):
    """The LR falls tenfold at the study's fractions of training; at the default size the last
    two whole epochs (the two the plateau rule compares) both run at the lowest LR."""
    from facebench.config import load_recipe
    from facebench.study.runs import LR_DROPS

    overrides = quickstart.SIZES[size].overrides
    for head in quickstart.HEADS:
        recipe = load_recipe(quickstart.default_recipes_dir() / "synth" / f"{head}.yaml", overrides)
        epochs = recipe.train.epochs
        assert recipe.schedule.name == "multistep" and recipe.schedule.gamma == 0.1
        assert recipe.schedule.milestones == pytest.approx([epochs * f for f in LR_DROPS])
        if size == "default":
            assert recipe.schedule.milestones[-1] <= int(epochs) - 2
