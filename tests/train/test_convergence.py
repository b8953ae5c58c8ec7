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


def test_difference_standard_error_against_numpy():
    import numpy as np

    from facebench.train.convergence import difference_standard_error

    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.3, 13), rng.normal(0.9, 0.1, 17)
    expected = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert difference_standard_error(a.tolist(), b.tolist()) == pytest.approx(expected)
    assert difference_standard_error([1.0], [1.0, 2.0]) == math.inf


def _result(tmp_path, epochs, start_step=0):
    losses = [x for epoch in epochs for x in epoch][start_step:]
    per_epoch = len(epochs[0])
    return TrainResult(tmp_path, None, len(losses), losses, start_step, steps_per_epoch=per_epoch)


def test_a_change_inside_the_step_noise_is_a_plateau(tmp_path):
    # a tiny, noisy loss at the end of a small set: +6 % between the means, but the steps
    # scatter by +-50 %, so two standard errors of the difference are far wider than 6 %
    noisy = [[0.020, 0.030, 0.010, 0.040, 0.010], [0.021, 0.032, 0.011, 0.042, 0.0106]]
    report = training_converged(_result(tmp_path, [[1.0] * 5, *noisy]))
    assert report["relative_change"] == pytest.approx(0.06, abs=0.001)
    assert report["relative_noise"] > 0.5 and report["converged"]
    assert "standard errors" in report["rule"]


def test_a_clear_trend_is_no_plateau_even_with_the_noise_criterion(tmp_path):
    # -5 % between epochs whose steps barely scatter: not noise, still training
    falling = [[1.000, 1.001, 0.999, 1.000], [0.950, 0.951, 0.949, 0.950]]
    report = training_converged(_result(tmp_path, falling))
    assert report["relative_noise"] < 0.01 and not report["converged"]


def test_the_noise_comes_from_the_last_two_complete_epochs_of_a_resumed_run(tmp_path):
    from facebench.train.convergence import difference_standard_error

    epochs = [[5.0, 1.0], [0.5, 0.7], [0.6, 0.62], [0.61, 0.6]]
    result = _result(tmp_path, epochs, start_step=3)  # resumed mid-epoch 1
    report = training_converged(result)
    assert report["epochs"] == 2 and report["epoch_losses"] == pytest.approx([0.61, 0.605])
    error = difference_standard_error(epochs[2], epochs[3])
    assert report["relative_noise"] == pytest.approx(2 * error / 0.61)
