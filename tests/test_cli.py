"""The command line: help for every subcommand, one-line errors."""

import subprocess
import sys

from facebench.cli import _command_modules, build_parser, main


def test_help_lists_every_command(capsys):
    build_parser().print_help()
    out = capsys.readouterr().out
    for name in _command_modules():
        assert name in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: facebench" in capsys.readouterr().out


def test_python_dash_m_runs():
    result = subprocess.run(
        [sys.executable, "-m", "facebench", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("facebench ")
