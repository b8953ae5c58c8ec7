"""Whether a training run ended on a loss plateau: the one convergence rule of the suite.

Rule: the mean training loss of the last complete epoch is within ``tolerance`` (2 %) of the
mean of the epoch before, relative to the earlier one. Fewer than two complete epochs, or a
non-finite loss in either, is not a plateau. The study and the quickstart both judge runs with
:func:`plateau_report`; a run that does not pass is marked unconverged and its claims not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Largest relative change of the epoch-mean loss between the last two epochs of a plateau.
PLATEAU_TOLERANCE = 0.02


def epoch_losses(
    step_losses: Sequence[float], steps_per_epoch: int, start_step: int = 0
) -> list[float]:
    """Mean loss of every complete epoch covered by ``step_losses`` (steps from ``start_step``).

    An epoch only partly present (a resumed run's first, a fractional run's last) is left out."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    first_epoch = -(-start_step // steps_per_epoch)  # first epoch whose start is in the list
    means = []
    epoch = first_epoch
    while True:
        lo = epoch * steps_per_epoch - start_step
        hi = lo + steps_per_epoch
        if hi > len(step_losses):
            return means
        means.append(math.fsum(step_losses[lo:hi]) / steps_per_epoch)
        epoch += 1


def plateau_report(epoch_means: Sequence[float], tolerance: float = PLATEAU_TOLERANCE) -> dict:
    """The rule applied to per-epoch mean losses: converged, the last two means, their change."""
    report = {
        "rule": f"last epoch's mean loss within {tolerance:.0%} of the epoch before",
        "tolerance": tolerance,
        "epochs": len(epoch_means),
        "last_epoch_loss": None,
        "previous_epoch_loss": None,
        "relative_change": None,
        "converged": False,
    }
    if len(epoch_means) < 2:
        return report
    previous, last = float(epoch_means[-2]), float(epoch_means[-1])
    report.update(last_epoch_loss=last, previous_epoch_loss=previous)
    if not (math.isfinite(previous) and math.isfinite(last)) or previous == 0.0:
        report["converged"] = bool(previous == last == 0.0)
        return report
    change = (last - previous) / abs(previous)
    report.update(relative_change=change, converged=bool(abs(change) <= tolerance))
    return report


def training_converged(result, tolerance: float = PLATEAU_TOLERANCE) -> dict:
    """:func:`plateau_report` of a :class:`facebench.train.trainer.TrainResult`."""
    means = epoch_losses(result.losses, result.steps_per_epoch, result.start_step)
    return plateau_report(means, tolerance)
