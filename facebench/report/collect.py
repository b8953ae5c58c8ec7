"""Find the JSON reports of runs and group them by model and kind."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from facebench import schema
from facebench.errors import DataError
from facebench.fileio import read_json


@dataclass
class RunReports:
    """One model's reports: verification/IJB per data set, transfer, uniform, identification,
    training (epoch losses and the plateau verdict)."""

    name: str
    verification: dict[str, dict] = field(default_factory=dict)
    transfer: dict | None = None
    uniform: dict | None = None
    identification: dict[str, dict] = field(default_factory=dict)
    training: dict | None = None


def _json_files(path: str) -> list[str]:
    """A JSON file itself, else ``DIR/reports/*.json`` (a run directory), else ``DIR/*.json``."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such report directory or file")
    nested = os.path.join(path, "reports")
    folder = nested if os.path.isdir(nested) else path
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    if not files:
        raise DataError(f"{path}: no JSON reports found (looked in {folder})")
    return files


def default_name(path: str) -> str:
    """A run's label: its directory name (the parent's for a ``reports`` folder or a file)."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        path = os.path.dirname(path)
    if os.path.basename(path) == "reports":
        path = os.path.dirname(path)
    return os.path.basename(path)


def collect_reports(path: str, name: str | None = None) -> RunReports:
    """Read every report of ``path``; files of unknown kind are skipped."""
    run = RunReports(name or default_name(path))
    for file in _json_files(path):
        data = read_json(file)
        kind = data.get(schema.KIND)
        label = data.get("name") or os.path.splitext(os.path.basename(file))[0]
        if kind in schema.PAIR_KINDS:
            run.verification[label] = data
        elif kind == schema.TRANSFER:
            run.transfer = data
        elif kind == schema.UNIFORM:
            run.uniform = data
        elif kind == schema.TRAINING:
            run.training = data
        elif kind == schema.IDENTIFICATION:
            run.identification[os.path.splitext(os.path.basename(file))[0]] = data
    if not (run.verification or run.uniform or run.identification):
        raise DataError(f"{path}: none of its JSON files is a facebench evaluation report")
    return run
