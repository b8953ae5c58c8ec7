"""Training: ``train(recipe, run_dir, ...)`` runs a recipe on one process or under torchrun."""

from facebench.train.run import train
from facebench.train.trainer import Trainer, TrainResult

__all__ = ["TrainResult", "Trainer", "train"]
