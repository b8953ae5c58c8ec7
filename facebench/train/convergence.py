"""Whether a training run ended on a loss plateau: the one convergence rule of the suite.

Rule: the mean training loss of the last complete epoch is within ``tolerance`` (2 %) of the
mean of the epoch before, relative to the earlier one, or, where the step losses are known,
within two standard errors of the difference of the two means: a change the step-to-step noise
explains is no trend (a small set has few, noisy steps per epoch and a tiny loss, where 2 % is
below the noise). Fewer than two complete epochs, or a non-finite loss in either, is not a
plateau. The study and the quickstart both judge runs with :func:`training_converged`; a run
that does not pass is marked unconverged and its claims not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from facebench import schema

#: Largest relative change of the epoch-mean loss between the last two epochs of a plateau.
PLATEAU_TOLERANCE = 0.02
#: A change within this many standard errors of the difference of the two means is noise.
NOISE_STANDARD_ERRORS = 2.0


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


def difference_standard_error(previous: Sequence[float], last: Sequence[float]) -> float:
    """Standard error of ``mean(last) - mean(previous)`` from the step losses of two epochs."""

    def variance_of_mean(values: Sequence[float]) -> float:
        n = len(values)
        if n < 2:
            return math.inf
        mean = math.fsum(values) / n
        return math.fsum((v - mean) ** 2 for v in values) / (n - 1) / n

    return math.sqrt(variance_of_mean(previous) + variance_of_mean(last))


def plateau_report(
    epoch_means: Sequence[float],
    tolerance: float = PLATEAU_TOLERANCE,
    standard_error: float | None = None,
) -> dict:
    """The rule applied to per-epoch mean losses (and, when given, the standard error of the
    last two means' difference): converged, the last two means, their change and the noise."""
    rule = f"last epoch's mean loss within {tolerance:.0%} of the epoch before"
    if standard_error is not None:
        rule += f" or within {NOISE_STANDARD_ERRORS:g} standard errors of the difference"
    report = {
        schema.RULE: rule,
        "tolerance": tolerance,
        "epochs": len(epoch_means),
        "last_epoch_loss": None,
        "previous_epoch_loss": None,
        schema.RELATIVE_CHANGE: None,
        "relative_noise": None,
        schema.CONVERGED: False,
    }
    if len(epoch_means) < 2:
        return report
    previous, last = float(epoch_means[-2]), float(epoch_means[-1])
    report.update(last_epoch_loss=last, previous_epoch_loss=previous)
    if not (math.isfinite(previous) and math.isfinite(last)) or previous == 0.0:
        report[schema.CONVERGED] = bool(previous == last == 0.0)
        return report
    change = (last - previous) / abs(previous)
    converged = abs(change) <= tolerance
    if standard_error is not None and math.isfinite(standard_error):
        noise = NOISE_STANDARD_ERRORS * standard_error / abs(previous)
        report["relative_noise"] = noise
        converged = converged or abs(change) <= noise
    report.update(relative_change=change, converged=bool(converged))
    return report


def training_converged(result, tolerance: float = PLATEAU_TOLERANCE) -> dict:
    """:func:`plateau_report` of a :class:`facebench.train.trainer.TrainResult`, with the noise of
    its last two complete epochs' step losses; the report holds every ``epoch_losses`` too."""
    per_epoch, start = result.steps_per_epoch, result.start_step
    means = epoch_losses(result.losses, per_epoch, start)
    error = None
    if len(means) >= 2:
        end = (-(-start // per_epoch) + len(means)) * per_epoch - start  # after the last epoch
        last = result.losses[end - per_epoch : end]
        previous = result.losses[end - 2 * per_epoch : end - per_epoch]
        error = difference_standard_error(previous, last)
    return {**plateau_report(means, tolerance, error), schema.EPOCH_LOSSES: means}
