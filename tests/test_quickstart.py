"""The quickstart's guards: an existing or unwritable output, missing recipes, a full disk."""

import errno
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
