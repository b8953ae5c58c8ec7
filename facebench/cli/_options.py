"""Options and help formatting shared by the subcommands."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to options that have a default (not to required ones)."""

    def _get_help_string(self, action) -> str:
        if action.default is None or action.required or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class Once(argparse.Action):
    """Stores an option's values; the option given a second time is an error (for options of
    several values that together make one setting, such as ``--size H W``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice; give it once")
        setattr(namespace, self.dest, values)


def add_progress_option(parser) -> None:
    """``--no-progress``, for commands that draw progress bars."""
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
