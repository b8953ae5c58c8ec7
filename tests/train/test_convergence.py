"""The plateau rule: per-epoch mean losses and the 2 % criterion, against plain loops."""

import math

import pytest

from facebench.train.convergence import epoch_losses, plateau_report, training_converged
from facebench.train.trainer import TrainResult


def _reference_epoch_means(losses, per_epoch, start):
    out = []
    for epoch in range(100):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        if steps[0] < start:
            continue
        if steps[-1] - start >= len(losses):
            break
        out.append(sum(losses[s - start] for s in steps) / per_epoch)
    return out


@pytest.mark.parametrize(("per_epoch", "start", "n"), [(3, 0, 10), (4, 0, 8), (3, 4, 9), (5, 5, 5)])
def test_epoch_losses_keep_complete_epochs_only(per_epoch, start, n):
    losses = [float(i * i % 7) + 0.5 for i in range(n)]
    got = epoch_losses(losses, per_epoch, start)
    assert got == pytest.approx(_reference_epoch_means(losses, per_epoch, start))


def test_epoch_losses_reject_a_bad_epoch_length():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        epoch_losses([1.0], 0)


@pytest.mark.parametrize(
    ("means", "converged"),
    [
        ([2.0, 1.0, 0.50, 0.495], True),  # -1 %
        ([1.0, 0.50, 0.49], False),  # -2.04 %: just outside
        ([0.50, 0.509], True),  # +1.8 %: a flat, slightly noisy end is a plateau
        ([0.50, 0.52], False),
        ([0.5], False),  # one epoch cannot show a plateau
        ([], False),
        ([0.5, math.nan], False),
        ([math.inf, math.inf], False),
    ],
)
def test_plateau_rule(means, converged):
    report = plateau_report(means)
    assert report["converged"] is converged
    assert report["epochs"] == len(means)
    if len(means) >= 2 and all(math.isfinite(m) for m in means):
        assert report["relative_change"] == pytest.approx((means[-1] - means[-2]) / means[-2])


def test_training_converged_reads_a_train_result(tmp_path):
    losses = [3.0, 3.0, 1.0, 1.0, 0.99, 0.99, 5.0]  # 3 epochs of 2 steps and a partial one
    result = TrainResult(tmp_path, None, 7, losses, steps_per_epoch=2)
    report = training_converged(result)
    assert report["converged"] and report["epochs"] == 3
    assert report["last_epoch_loss"] == pytest.approx(0.99)
