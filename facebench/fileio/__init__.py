"""Every write facebench makes: atomic files and folders (:mod:`~facebench.fileio.atomic`), output
checks before work (:mod:`~facebench.fileio.outputs`) and file locks
(:mod:`~facebench.fileio.locks`). The names below are those of the three modules."""

from facebench.fileio.atomic import (
    append_text,
    atomic_dir,
    atomic_file,
    atomic_path,
    check_not_temporary,
    read_json,
    scratch_dir,
    staged,
    stale_temporaries,
    temporary_name,
    unstaged,
    write_bytes,
    write_json,
    write_text,
)
from facebench.fileio.locks import exclusive
from facebench.fileio.outputs import check_file_name, check_output_dir, check_output_file

__all__ = [
    "append_text",
    "atomic_dir",
    "atomic_file",
    "atomic_path",
    "check_file_name",
    "check_not_temporary",
    "check_output_dir",
    "check_output_file",
    "exclusive",
    "read_json",
    "scratch_dir",
    "staged",
    "stale_temporaries",
    "temporary_name",
    "unstaged",
    "write_bytes",
    "write_json",
    "write_text",
]
