"""Options are checked before any work (issue 26.2, 26.6): a list option given twice keeps every
value, every numeric option is range-checked by the shared argparse types, ``--out ""`` is
refused, an output that cannot be created fails before the inputs are read, and a closed stdout
pipe ends the command quietly. The parser is walked, so a new option is covered too."""

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facebench.cli import build_parser
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _leaves(parser: argparse.ArgumentParser, prefix: tuple = ()):
    """``(command words, parser)`` of every subcommand that takes no further subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaves(sub, (*prefix, name))


LEAVES = dict(_leaves(build_parser()))


def _values(action: argparse.Action, count: int, skip: int = 0) -> list[str]:
    """``count`` distinct values that ``action`` accepts (after the first ``skip`` of them)."""
    candidates = list(action.choices or ()) or ["0.5", "0.25", "1", "2", "3", "4", "5", "6"]
    good = []
    for text in candidates:
        try:
            if action.type is not None:
                action.type(text)
        except (argparse.ArgumentTypeError, ValueError):
            continue
        good.append(text)
    return good[skip : skip + count]


def _count(action: argparse.Action) -> int:
    return action.nargs if isinstance(action.nargs, int) else 1


def _argv(words: tuple, parser: argparse.ArgumentParser, given=()) -> list[str]:
    """``words`` and every required positional and option of ``parser`` (with accepted values),
    leaving out the actions in ``given`` (the caller adds those)."""
    argv = list(words)
    for action in parser._actions:
        if action in given or action.nargs == 0:
            continue
        if not action.option_strings:
            argv += _values(action, _count(action))
        elif action.required:
            argv += [action.option_strings[0], *_values(action, _count(action))]
    for group in parser._mutually_exclusive_groups:
        if group.required and not set(group._group_actions) & set(given):
            first = group._group_actions[0]
            argv += [first.option_strings[0], *_values(first, _count(first))]
    return argv


def _is_list(action: argparse.Action) -> bool:
    return bool(action.option_strings) and (
        action.nargs in ("+", "*")
        or (isinstance(action.nargs, int) and action.nargs > 1)
        or isinstance(action, (argparse._AppendAction, argparse._ExtendAction))
    )


LIST_OPTIONS = [
    (words, action)
    for words, parser in LEAVES.items()
    for action in parser._actions
    if _is_list(action)
]


def _flat(value) -> list:
    if isinstance(value, list):
        return [v for item in value for v in _flat(item)]
    return [value]


@pytest.mark.parametrize(
    ("words", "action"),
    LIST_OPTIONS,
    ids=[f"{' '.join(w)} {a.option_strings[0]}" for w, a in LIST_OPTIONS],
)
def test_a_list_option_given_twice_keeps_every_value_or_is_refused(words, action, capsys):
    n = 2 if action.nargs in ("+", "*") else _count(action)
    first, second = _values(action, n), _values(action, n, skip=n)
    assert len(first) == len(second) == n, "no accepted values to try"
    option = action.option_strings[0]
    argv = [*_argv(words, LEAVES[words], {action}), option, *first, option, *second]
    if isinstance(action.nargs, int) and action.nargs > 1:  # one setting of several values
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 2 and "given twice" in capsys.readouterr().err
        return
    kept = _flat(getattr(build_parser().parse_args(argv), action.dest))
    convert = action.type or str
    assert kept == [convert(v) for v in first + second]


def test_the_list_options_include_the_ones_that_lost_data():
    names = {f"{' '.join(w)} {a.option_strings[0]}" for w, a in LIST_OPTIONS}
    assert {"index build --embeddings", "index add --embeddings", "quickstart --heads"} <= names


def test_no_numeric_option_takes_an_unchecked_int_or_float():
    bare = [
        f"{' '.join(words)} {action.option_strings}"
        for words, parser in LEAVES.items()
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert not bare, f"use a range-checked type of facebench.cli._types: {bare}"


BAD_VALUES = [
    ("verify", ["--target-far", "nan"]),
    ("verify", ["--target-far", "2"]),
    ("verify", ["--target-far", "-1"]),
    ("verify", ["--target-far", "0"]),
    ("verify", ["--batch-size", "0"]),
    ("data synth", ["--difficulty", "nan"]),
    ("data synth", ["--difficulty", "inf"]),
    ("data synth", ["--difficulty", "-0.5"]),
    ("data synth", ["--difficulty", "11"]),
    ("data synth", ["--hard-difficulty", "nan"]),
    ("data synth", ["--seed", "-1"]),
    ("data synth", ["--seed", str(2**32)]),
    ("data synth", ["--image-size", "100000"]),
    ("data synth", ["--image-size", "31"]),
    ("data synth", ["--identities", "0"]),
    ("data synth", ["--identities", "x"]),
    ("data synth", ["--pairs", "-20"]),
    ("data synth", ["--test-images-per-identity", "-1"]),
    ("data synth", ["--workers", "0"]),
    ("data synth", ["--workers", "100000"]),
    ("data info", ["--samples", "-1"]),
    ("export", ["--opset", "1"]),
    ("export", ["--opset", "99"]),
    ("export", ["--check-images", "0"]),
    ("export", ["--tolerance", "nan"]),
    ("export", ["--tolerance", "-1"]),
    ("search", ["--threshold", "nan"]),
    ("search", ["--threshold", "1.5"]),
    ("search", ["--threshold", "-inf"]),
    ("search", ["--far", "0"]),
    ("search", ["--far", "nan"]),
    ("search", ["--top-k", "0"]),
    ("embed", ["--batch-size", "0"]),
    ("embed", ["--std", "0"]),
    ("embed", ["--mean", "nan"]),
    ("embed", ["--size", "0", "112"]),
    ("embed", ["--size", "100000", "112"]),
    ("ijb", ["--batch-size", "-1"]),
    ("index build", ["--train-rows", "0"]),
    ("quickstart", ["--workers", "0"]),
    ("uniform", ["--batch-size", "0"]),
]


@pytest.mark.parametrize(
    ("command", "bad"), BAD_VALUES, ids=[f"{c} {' '.join(b)}" for c, b in BAD_VALUES]
)
def test_a_numeric_option_out_of_range_is_one_line(command, bad, capsys):
    words = tuple(command.split())
    parser = LEAVES[words]
    given = {a for a in parser._actions if bad[0] in a.option_strings}
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*_argv(words, parser, given), *bad])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert f"argument {bad[0]}" in err and "expected" in err, err


OUTPUTS = sorted(
    (words, option)
    for words, parser in LEAVES.items()
    for action in parser._actions
    for option in action.option_strings
    if option in ("--out", "--onnx", "--data")
    or (words == ("index", "add") and option == "--index")
)


@pytest.mark.parametrize(
    ("words", "option"), OUTPUTS, ids=[f"{' '.join(w)} {o}" for w, o in OUTPUTS]
)
def test_an_empty_output_path_is_refused(words, option, capsys):
    parser = LEAVES[words]
    given = {a for a in parser._actions if option in a.option_strings}
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*_argv(words, parser, given), option, ""])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "empty" in err, err


def test_every_command_with_an_output_is_covered():
    with_out = {w for w, _ in OUTPUTS}
    assert with_out == set(LEAVES) - {("data", "info")}


def _output_table() -> dict:
    """The table of test_output_checks.py: command -> (kind, output name, argv)."""
    spec = importlib.util.spec_from_file_location(
        "output_checks", ROOT / "tests/faults/test_output_checks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TABLE


TABLE = _output_table()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
@pytest.mark.parametrize("command", list(TABLE))
def test_an_output_under_proc_fails_before_the_inputs_are_read(
    tmp_path, capsys, run_command, command
):
    # /proc passes the permission check as root, but nothing can be created in it
    _, name, argv = TABLE[command]
    args = [a.format(out=f"/proc/facebench-test/{name}", no=tmp_path / "missing") for a in argv]
    assert run_command(command, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/proc" in err[0] and "missing" not in err[0], err


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    rng = np.random.default_rng(0)
    images = [encode_image(rng.integers(0, 256, (8, 8, 3), np.uint8)) for _ in range(4)]
    write_face_pack(str(tmp_path / "p"), list(enumerate(images)), (8, 8))
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line: `facebench data info P | true`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "facebench", "data", "info", str(tmp_path / "p")],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141, done.stderr
