"""Training in float64, for tests that compare two code paths over several steps.

In float32, SGD with momentum grows the rounding differences of two code paths (layouts,
processes, kernel sets) by about 2000x over 6 steps on the tiny recipe; in float64 the same
growth stays below 1e-12. Run as a script (``torchrun tests/train/float64.py ARGS``) it is
``python -m facebench ARGS`` in float64.
"""

import sys

import torch

import facebench.data.model_input as model_input_module


def train_in_float64():
    """Default dtype float64 (models, heads) and float64 model input, in every module that
    imported ``model_input`` (the trainer, the embedders) and for later imports; returns the
    undo."""
    to_model_input, before = model_input_module.model_input, torch.get_default_dtype()
    modules = [m for m in list(sys.modules.values()) if hasattr(m, "__dict__")]
    users = [m for m in modules if vars(m).get("model_input") is to_model_input]
    for module in users:
        module.model_input = lambda *a, **kw: to_model_input(*a, **kw).double()
    torch.set_default_dtype(torch.float64)

    def undo():
        for module in users:
            module.model_input = to_model_input
        torch.set_default_dtype(before)

    return undo


if __name__ == "__main__":
    from facebench.cli import main

    train_in_float64()
    sys.exit(main(sys.argv[1:]))
