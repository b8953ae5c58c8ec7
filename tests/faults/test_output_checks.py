"""Every command that writes checks its outputs before any work (issue 14.1).

The table has one row per subcommand (built from the CLI's parser, so a new subcommand without
a row fails) and per data script. Inputs are paths that do not exist: a command that read its
inputs before checking its outputs would fail on them instead, and the test would see it.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "synth" / "bce_u.yaml")

# kind: "file" (a new file), "update" (an existing file rewritten in place), "dir" (a folder
# that may exist, holding the listed outputs), "new-dir" (a folder that must not exist),
# "resume-dir" (a folder whose earlier outputs are reused: only a file in its place is wrong).
# argv takes the output path as {out} and a missing input folder as {no}.
TABLE = {
    "data from-folder": ("new-dir", "pack", ["data", "from-folder", "{no}", "--out", "{out}"]),
    "data to-folder": ("new-dir", "f", ["data", "to-folder", "{no}/p", "--out", "{out}"]),
    "data bin-to-folder": (
        "new-dir",
        "f",
        ["data", "bin-to-folder", "{no}/a.bin", "--out", "{out}"],
    ),
    "data folder-to-bin": ("file", "a.bin", ["data", "folder-to-bin", "{no}", "--out", "{out}"]),
    "data synth": ("new-dir", "s", ["data", "synth", "--out", "{out}", "--identities", "2"]),
    "embed": (
        "file",
        "e.npy",
        ["embed", "--model", "{no}/m.pt", "--pack", "{no}", "--out", "{out}"],
    ),
    "export": ("file", "m.onnx", ["export", "--model", "{no}/m.pt", "--onnx", "{out}"]),
    "identify": (
        "dir:identification.json",
        "r",
        ["identify", "--gallery", "{no}/g.npy", "--probes", "{no}/p.npy", "--out", "{out}"],
    ),
    "ijb": (
        "dir:ijbc.json",
        "r",
        ["ijb", "--model", "{no}/m.pt", "--root", "{no}", "--out", "{out}"],
    ),
    "index build": (
        "file",
        "g.index",
        ["index", "build", "--embeddings", "{no}/e.npy", "--out", "{out}"],
    ),
    "index add": (
        "update",
        "g.index",
        ["index", "add", "--index", "{out}", "--embeddings", "{no}/e.npy"],
    ),
    "quickstart": ("new-dir", "q", ["quickstart", "--quick", "--out", "{out}", "--data", "{no}"]),
    "report": ("dir:report.md", "r", ["report", "{no}", "--out", "{out}"]),
    "search": (
        "file",
        "s.csv",
        [
            "search",
            "--index",
            "{no}/g",
            "--embeddings",
            "{no}/e.npy",
            "--threshold",
            "0.3",
            "--out",
            "{out}",
        ],
    ),
    "study": ("resume-dir", "st", ["study", "--idx", "{no}", "--quick", "--out", "{out}"]),
    "train": ("dir:model.pt", "run", ["train", RECIPE, "--data", "{no}", "--out", "{out}"]),
    "uniform": (
        "dir:uniform.json",
        "r",
        ["uniform", "--model", "{no}/m.pt", "--pack", "{no}", "--out", "{out}"],
    ),
    "verify": (
        "dir:lfw.json",
        "r",
        ["verify", "--embeddings", "{no}/e.npy", "--bin", "{no}/lfw.bin", "--out", "{out}"],
    ),
    "data_scripts/align.py": (
        "new-dir",
        "aligned",
        ["--images", "{no}", "--landmarks", "{no}/lm.txt", "--out", "{out}"],
    ),
    "data_scripts/idx_to_packs.py": ("new-dir", "packs", ["{no}", "--out", "{out}"]),
    "data_scripts/json_digits_to_idx.py": ("new-dir", "digits", ["{no}", "--out", "{out}"]),
    "data_scripts/lfw_pairs_to_bin.py": (
        "file",
        "lfw.bin",
        ["--pairs", "{no}/pairs.txt", "--root", "{no}", "--out", "{out}"],
    ),
}


def test_every_subcommand_and_data_script_has_a_row(writing_commands):
    assert set(TABLE) == writing_commands


def _cases(kind: str):
    """(case name, prepare(out) -> None, words the message must hold); ``out``'s parent does
    not exist yet."""

    def inside(make):
        def prepare(out):
            out.parent.mkdir()
            make(out)

        return prepare

    yield "parent is a file", lambda out: out.parent.write_text("x"), "is a file, not a folder"
    if kind in ("file", "update"):
        yield "a folder where a file goes", inside(lambda out: out.mkdir()), "is a folder"
    else:
        yield "a file where a folder goes", inside(lambda out: out.write_text("x")), "is a file"
    if kind == "file":
        yield "existing file", inside(lambda out: out.write_text("x")), "already exists"
    elif kind == "new-dir":
        yield "existing folder", inside(lambda out: out.mkdir()), "already exists"
    elif kind.startswith("dir:"):
        name = kind.split(":", 1)[1]

        def existing(out):
            out.mkdir()
            (out / name).write_text("earlier")

        yield "existing output inside", inside(existing), "already"


CASES = [
    (command, case, prepare, words)
    for command, (kind, _, _) in TABLE.items()
    for case, prepare, words in _cases(kind)
]


@pytest.mark.parametrize(
    "command, case, prepare, words", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_bad_output_is_one_line_before_any_work(
    tmp_path, capsys, snapshot, run_command, command, case, prepare, words
):
    _, name, argv = TABLE[command]
    (tmp_path / "work").mkdir()
    out = tmp_path / "work" / "sub" / name
    prepare(out)
    before = snapshot(tmp_path)
    args = [a.format(out=out, no=tmp_path / "missing") for a in argv]
    assert run_command(command, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: " in err[0], err
    assert words in err[0] and str(tmp_path / "work") in err[0], err[0]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", list(TABLE))
def test_unwritable_folder_is_refused_before_any_work(
    tmp_path, capsys, monkeypatch, snapshot, run_command, command
):
    kind, name, argv = TABLE[command]
    out = tmp_path / "work" / name
    out.parent.mkdir()
    if kind == "update":
        out.write_text("index")
    before = snapshot(tmp_path)
    # root passes every permission check: answer as a read-only folder would
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    args = [a.format(out=out, no=tmp_path / "missing") for a in argv]
    assert run_command(command, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0], err
    assert snapshot(tmp_path) == before
    assert os.listdir(tmp_path / "work") == ([name] if kind == "update" else [])
