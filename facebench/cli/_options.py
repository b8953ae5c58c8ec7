"""Options and help formatting shared by the subcommands."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to options that have a default (not to required ones)."""

    def _get_help_string(self, action) -> str:
        if action.default is None or action.required or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def add_progress_option(parser) -> None:
    """``--no-progress``, for commands that draw progress bars."""
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
