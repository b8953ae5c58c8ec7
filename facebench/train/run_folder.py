"""The run folder: claimed by one ``train`` at a time, holding a new run or one to resume.

``RUN_DIR`` holds ``recipe.yaml``, ``checkpoints/step_N.pt``, ``log.jsonl``, ``reports/``,
``tb/`` and, when training has finished, ``model.pt``.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from facebench.config import save_recipe
from facebench.errors import ConfigError, WriteError
from facebench.fileio import exclusive
from facebench.train import checkpoint as ckpt


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a new run); ConfigError for ``resume`` without a
    checkpoint, or for a folder that already holds a run when not resuming."""
    latest = ckpt.latest_checkpoint(run_dir / "checkpoints")
    if resume and latest is None:
        raise ConfigError(f"{run_dir}: --resume, but no checkpoint in {run_dir / 'checkpoints'}")
    if not resume and (latest is not None or (run_dir / "model.pt").exists()):
        raise ConfigError(
            f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out"
        )
    return latest


@contextlib.contextmanager
def claimed(run_dir: Path, is_main: bool):
    """The main process holds an OS lock on the run folder for the whole run, so a second
    ``train`` on it is refused; a run that fails before its first checkpoint removes the folder
    it created."""
    if not is_main:
        yield
        return
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{run_dir}: cannot create the run folder ({exc.strerror})") from exc
    with exclusive(run_dir, wait=False, what="run folder"):
        try:
            yield
        except BaseException:
            if not existed and ckpt.latest_checkpoint(run_dir / "checkpoints") is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def prepare(trainer, resume: bool) -> None:
    """Restore ``trainer`` from the checkpoint to resume from (``resume``), then create the run
    folder and write its ``recipe.yaml`` (main process); every process waits."""
    latest = resume_point(trainer.run_dir, resume)
    if latest is not None:
        ckpt.load_training_state(trainer, latest)
    if trainer.ctx.is_main:
        trainer.run_dir.mkdir(parents=True, exist_ok=True)
        save_recipe(trainer.recipe, trainer.run_dir / "recipe.yaml")
    trainer.ctx.barrier()
