"""Image folders ``root/<identity>/<image>``: a torch Dataset and conversion to and from packs."""

from __future__ import annotations

import os
import tempfile

from facebench.errors import DataError


def temporary_output_dir(out_dir: str) -> str:
    """A new temporary directory beside ``out_dir`` (which must not exist) to rename into place."""
    if os.path.exists(out_dir):
        raise DataError(f"{out_dir}: output directory already exists")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
