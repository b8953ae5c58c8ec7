"""``train``: one training run, from a recipe to ``model.pt``, in a run folder it claims."""

from __future__ import annotations

import gc
from pathlib import Path

from facebench import distributed as dist
from facebench.config import Recipe, load_recipe
from facebench.errors import ConfigError
from facebench.train import build, run_folder
from facebench.train.hooks import Hook
from facebench.train.trainer import Trainer, TrainResult


def train(
    recipe: Recipe | str | Path,
    run_dir: str | Path,
    *,
    data_root: str | Path | None = None,
    device: str = "cpu",
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    hooks: list[Hook] | tuple[Hook, ...] = (),
    progress: bool = True,
    recipe_file: str | None = None,
) -> TrainResult:
    """Train ``recipe`` (a :class:`Recipe` or a recipe file) into ``run_dir``.

    Under torchrun this is one rank of a DDP run. ``hooks`` are added after the standard ones.
    ``recipe_file`` (default: ``recipe`` when it is a path) names the recipe in errors about
    its values found while building the run (batch size, head, backbone, data paths).
    """
    if not isinstance(recipe, Recipe):
        recipe_file = recipe_file or str(recipe)
        recipe = load_recipe(recipe, overrides)
    elif overrides:
        raise ConfigError("overrides apply to recipe files; edit the Recipe object instead")
    run_folder.resume_point(Path(run_dir), resume)  # before any work
    ctx = dist.setup(device)
    trainer = None
    try:
        with run_folder.claimed(Path(run_dir), ctx.is_main):
            with build.recipe_named(recipe_file or f"recipe {recipe.name!r}"):
                trainer = Trainer(recipe, run_dir, ctx, data_root=data_root, progress=progress)
            trainer.hooks.extend(hooks)
            run_folder.prepare(trainer, resume)
            return trainer.fit()
    finally:
        if ctx.group is not None:
            # DDP's reducer holds the process group. Freed after the group is destroyed, it
            # drops the last reference and joins gloo's threads holding the GIL, which a thread
            # freeing a finished collective's tensors waits for: a hang at exit. Freed first,
            # destroy_process_group ends the group, releasing the GIL.
            del trainer
            gc.collect()
        dist.teardown(ctx)
