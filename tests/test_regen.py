"""docs/regen.py: the block markers, the digit mask that --check compares, the work folder."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REGEN = Path(__file__).resolve().parent.parent / "docs" / "regen.py"


@pytest.fixture(scope="module")
def regen():
    spec = importlib.util.spec_from_file_location("regen", REGEN)
    module = importlib.util.module_from_spec(spec)
    sys.modules["regen"] = module  # its dataclass looks its module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["regen"]


PAGE = """intro
<!-- regen:verify -->
```
$ old command
old output
```
<!-- /regen -->
made on <!-- regen:machine -->old CPU<!-- /regen -->, and
<!-- regen:uniform -->
kept
<!-- /regen -->
end
"""


def test_replace_blocks_rewrites_the_named_blocks_only(regen):
    bodies = {"verify": regen.transcript_body("$ cmd\nout"), "machine": "New CPU"}
    new = regen.replace_blocks(PAGE, bodies, "page")
    assert new == PAGE.replace("old command\nold output", "cmd\nout").replace("old CPU", "New CPU")
    assert regen.replace_blocks(new, bodies, "page") == new  # a rerun changes nothing
    assert [m["name"] for m in regen.blocks(new, "page")] == ["verify", "machine", "uniform"]


def test_a_marker_without_its_end_is_an_error_naming_the_page(regen):
    with pytest.raises(
        regen.RegenError, match=re.escape("docs/x.md: a <!-- regen:NAME --> marker without")
    ):
        regen.blocks(PAGE + "<!-- regen:search -->\nno end\n", "docs/x.md")


def test_mask_hides_every_number_and_nothing_else(regen):
    a = "pack: x/train.rec (5,470,188 bytes)  max abs difference 1.91e-06  10-fold 87.92 +- 2.06"
    b = "pack: x/train.rec (547,018 bytes)  max abs difference 2e-06  10-fold 52.50 +- 10.01"
    assert (
        regen.mask(a)
        == regen.mask(b)
        == ("pack: x/train.rec (# bytes)  max abs difference #  #-fold # +- #")
    )
    assert regen.mask("reports in reports/bce_u") != regen.mask("reports written to reports/bce_u")


def test_mask_keeps_a_table_shape_and_row_names_not_its_values(regen):
    head = "| metric | bce_u | arcface |\n|---|---|---|\n"
    table = head + "| loss plateau | yes (-0.18%) | yes (1%) |"
    other = head + "| loss plateau | **no** (-20.85%) | no |"
    assert regen.mask(table) == regen.mask(other)
    renamed = other.replace("loss plateau", "plateau")
    extra_column = table.replace("arcface |", "arcface | cosface |").replace("%) |", "%) | x |")
    extra_row = table + "\n| epochs | 12 | 12 |"
    new_head = table.replace("arcface", "adaface")
    for changed in (renamed, extra_column, extra_row, new_head):
        assert regen.mask(changed) != regen.mask(table)
    # a line after the table is compared as text again
    assert regen.mask(table + "\n\nreport: a") != regen.mask(table + "\n\nreport: b")


def test_differences_ignore_numbers_and_name_the_block_that_drifted(regen):
    page = PAGE.replace("old command\nold output", "cmd\nsynth_val: 10-fold 87.92 +- 2.06")
    same = regen.command_bodies({"verify": "$ cmd\nsynth_val: 10-fold 52.50 +- 10.01"})
    assert regen.differences({"README.md": page}, same) == []
    drifted = regen.command_bodies({"verify": "$ cmd\nsynth_val: ten-fold 52.50 +- 10.01"})
    (diff,) = regen.differences({"README.md": page}, drifted)
    assert "README.md block verify" in diff
    assert "-synth_val: #-fold # +- #" in diff and "+synth_val: ten-fold # +- #" in diff


def test_a_table_block_is_the_markdown_table_of_its_transcript(regen):
    transcript = "$ facebench quickstart --out q\n| metric | a |\n|---|---|\n| x | 1 |\n\nreport: r"
    bodies = regen.command_bodies({"quickstart": transcript})
    assert bodies["quickstart"] == f"\n```\n{transcript}\n```\n"
    assert bodies["quickstart-table"] == "\n\n| metric | a |\n|---|---|\n| x | 1 |\n\n"


def test_check_names_refuses_unknown_and_missing_blocks(regen):
    names = [*regen.BLOCKS, *regen.TABLES]
    every = "".join(f"<!-- regen:{name} --><!-- /regen -->" for name in names)
    regen.check_names({"README.md": every})
    with pytest.raises(regen.RegenError, match=re.escape("README.md: unknown block 'verfy'")):
        regen.check_names({"README.md": every + "<!-- regen:verfy --><!-- /regen -->"})
    with pytest.raises(regen.RegenError, match=r"no page holds the block.s. study"):
        regen.check_names({"README.md": every.replace("regen:study", "regen:machine")})


def test_without_bars_keeps_log_lines_and_drops_progress_bars(regen):
    err = "synth: 10%|#  | 1/10\rsynth: 100%|###| 10/10\nbce_u: 12 epochs, 120 s\n\narcface\n\n"
    assert regen.without_bars(err) == "bce_u: 12 epochs, 120 s\n\narcface"


def test_the_work_folder_is_regens_own_and_a_rerun_keeps_data_and_a_finished_quickstart(
    regen, tmp_path
):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(regen.RegenError, match="foreign: not a regen work folder"):
        regen.Work(foreign, "quick")
    assert (foreign / "thesis.tex").read_text() == "mine"

    work = regen.Work(tmp_path / "work", "quick")
    for name in ("facebench-data/synth-quick/train.rec", "quickstart/report.md", "reports/x.json"):
        (work.path / name).parent.mkdir(parents=True, exist_ok=True)
        (work.path / name).write_text("x")
    again = regen.Work(work.path, "quick")
    assert (again.path / "facebench-data/synth-quick/train.rec").exists()
    assert again.finished() and not (again.path / "reports").exists()
    assert (again.path / "recipes").resolve() == REGEN.parent.parent / "recipes"

    (again.path / regen.STATE).write_text('{"size": "quick", "wall_s": 1}')
    (again.path / "quickstart" / "report.md").unlink()  # an unfinished quickstart is cleared
    cleared = regen.Work(work.path, "quick")
    assert not (cleared.path / "quickstart").exists() and cleared.state() == {}

    for name in ("quickstart/report.md", regen.STATE):
        (work.path / name).parent.mkdir(exist_ok=True)
        (work.path / name).write_text('{"size": "quick"}')
    with pytest.raises(regen.RegenError, match="holds a quick-size quickstart"):
        regen.Work(work.path, "default")


def test_outputs_lose_the_work_folder_and_the_quick_data_name(regen, tmp_path):
    work = regen.Work(tmp_path, "quick")
    text = f"report: {work.path}/quickstart/report.md\npack: facebench-data/synth-quick/train.rec"
    assert work.relative(text) == (
        "report: quickstart/report.md\npack: facebench-data/synth/train.rec"
    )


def test_a_failing_command_is_an_error_with_its_exit_status_and_stderr(regen, tmp_path):
    work = regen.Work(tmp_path, "quick")
    with pytest.raises(
        regen.CommandFailed, match=r"(?s)`ls missing` failed with exit status 2.*missing"
    ):
        work.run(regen.Step("ls missing"))
    assert work.run(regen.Step("echo {synth}; echo note >&2", stderr=True)) == (
        "facebench-data/synth\nnote"
    )
