"""The command line: help for every subcommand, one-line errors."""

import contextlib
import subprocess
import sys

import pytest

from facebench.cli import _command_modules, build_parser, main


def test_help_lists_every_command(capsys):
    build_parser().print_help()
    out = capsys.readouterr().out
    for name in _command_modules():
        assert name in out


def test_help_names_every_registered_head():
    from facebench.cli import DESCRIPTION
    from facebench.heads import list_heads

    missing = [head for head in list_heads() if head not in DESCRIPTION]
    assert not missing, f"facebench --help does not name the heads {missing}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: facebench" in capsys.readouterr().out


def test_python_dash_m_runs():
    result = subprocess.run(
        [sys.executable, "-m", "facebench", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("facebench ")


def _help(capsys, argv: list[str]) -> str:
    with contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def _description(text: str) -> str:
    """The paragraph between the usage lines and the option list."""
    return text.split("\n\n")[1]


def test_subcommands_have_their_own_description(capsys):
    texts = {
        tuple(cmd): _description(_help(capsys, cmd))
        for cmd in (["index"], ["index", "build"], ["index", "add"])
    }
    assert len(set(texts.values())) == 3, texts


def test_help_shows_defaults_of_optional_values(capsys):
    text = _help(capsys, ["data", "synth"])
    assert "(default: 100)" in text and "(default: 1.5)" in text
    assert "(default: None)" not in text
    assert "(default: Flat)" in _help(capsys, ["index", "build"])


@pytest.mark.parametrize(
    "command",
    [
        ["verify"],
        ["uniform"],
        ["ijb"],
        ["embed"],
        ["train"],
        ["quickstart"],
        ["data", "synth"],
        ["data", "from-folder"],
        ["data", "to-folder"],
        ["data", "bin-to-folder"],
        ["data", "folder-to-bin"],
    ],
)
def test_every_command_that_draws_a_bar_can_hide_it(capsys, command):
    assert "--no-progress" in _help(capsys, command)
