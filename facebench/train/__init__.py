"""Training: ``train(recipe, run_dir, ...)`` runs a recipe on one process or under torchrun."""

from facebench.train.trainer import Trainer, TrainResult, train

__all__ = ["TrainResult", "Trainer", "train"]
