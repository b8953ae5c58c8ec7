"""Verification metrics against slow, obvious references (threshold grids, Python loops)."""

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold

from facebench import schema
from facebench.errors import DataError, EvalError
from facebench.eval import verification as V


def scores_of(emb, issame):
    unit = V.check_pairs(emb, issame, "test")
    return V.pair_scores(unit)


def reference_ten_fold(dist, issame, thresholds):
    """The protocol as usually written: KFold, a Python loop over thresholds, np.argmax."""
    accs, best = [], []
    for train, test in KFold(n_splits=10, shuffle=False).split(dist):
        train_acc = []
        for t in thresholds:
            pred = dist[train] < t
            train_acc.append(np.mean(pred == issame[train]))
        t = thresholds[int(np.argmax(train_acc))]
        pred = dist[test] < t
        tp = np.sum(pred & issame[test])
        tn = np.sum(~pred & ~issame[test])
        accs.append(float(tp + tn) / test.size)
        best.append(t)
    return accs, best


def reference_val(dist, issame, thresholds, target):
    """VAL@FAR with a Python loop and duplicates dropped by hand (first threshold kept)."""
    vals, fars = [], []
    for train, test in KFold(n_splits=10, shuffle=False).split(dist):
        imp = dist[train][~issame[train]]
        curve = [np.sum(imp < t) / imp.size for t in thresholds]
        xs, ys = [], []
        for far, t in zip(curve, thresholds, strict=True):
            if not xs or far != xs[-1]:
                xs.append(far)
                ys.append(t)
        reached = max(curve) >= target
        thr = float(interp1d(xs, ys, kind="slinear")(target)) if reached else 0.0
        pred = dist[test] < thr
        vals.append(np.sum(pred & issame[test]) / np.sum(issame[test]))
        fars.append(np.sum(pred & ~issame[test]) / np.sum(~issame[test]))
    return np.mean(vals), np.std(vals), np.mean(fars)


@pytest.mark.parametrize("n_pairs", [600, 613])
def test_ten_fold_matches_plain_grid(make_pairs, n_pairs):
    emb, issame = make_pairs(n_pairs, noise=1.3, seed=n_pairs)
    dist, _ = scores_of(emb, issame)
    ref_accs, ref_best = reference_ten_fold(dist, issame, V.ACCURACY_THRESHOLDS)
    got = V.ten_fold_accuracy(dist, issame)
    assert got["accuracy_10fold_folds"] == ref_accs
    assert got["threshold_10fold_dist"] == [float(t) for t in ref_best]
    assert got["accuracy_10fold_mean"] == pytest.approx(np.mean(ref_accs), abs=1e-15)
    assert got["accuracy_10fold_std"] == pytest.approx(np.std(ref_accs), abs=1e-15)


def test_ten_fold_first_among_ties():
    # Every threshold in (0.5, 1.5] separates perfectly: the first of them, 0.51, must win.
    dist = np.tile([0.5, 1.5], 50)
    issame = np.tile([True, False], 50)
    got = V.ten_fold_accuracy(dist, issame)
    assert got["threshold_10fold_dist"] == [pytest.approx(0.51)] * 10
    assert got["accuracy_10fold_mean"] == 1.0


def test_folds_match_sklearn_kfold():
    for n in (10, 37, 6000, 7001):
        ref = [(int(t[0]), int(t[-1]) + 1) for _, t in KFold(10).split(np.arange(n))]
        assert V.fold_bounds(n) == ref


def test_val_matches_reference(make_pairs):
    emb, issame = make_pairs(3000, noise=1.2, seed=3)
    dist, _ = scores_of(emb, issame)
    # a coarse grid keeps the Python reference fast; it exercises the same interpolation
    grid = np.arange(0, 4, 0.004)
    got = V.val_at_far(dist, issame, 1e-3, thresholds=grid)
    val, std, far = reference_val(dist, issame, grid, 1e-3)
    assert got["val_at_far_1e-3"] == pytest.approx(val, abs=1e-12)
    assert got["val_at_far_1e-3_std"] == pytest.approx(std, abs=1e-12)
    assert got["val_at_far_1e-3_far_mean"] == pytest.approx(far, abs=1e-12)


def test_interpolation_collapses_duplicate_fars_to_first_threshold():
    thresholds = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    far = np.array([0.0, 0.0, 0.2, 0.2, 0.2, 1.0])
    # distinct points: (0, 0.0), (0.2, 2.0), (1.0, 5.0)
    assert V.interpolate_threshold(far, thresholds, 0.1) == pytest.approx(1.0)
    assert V.interpolate_threshold(far, thresholds, 0.2) == pytest.approx(2.0)
    assert V.interpolate_threshold(far, thresholds, 0.6) == pytest.approx(3.5)
    assert V.interpolate_threshold(far, thresholds[:5] * 0, 2.0) == 0.0  # never reached


def reference_global(cos, issame):
    """Try every score (and one below all) as the threshold, in a Python loop."""
    best = -1.0
    for tau in [cos.min() - 1.0, *sorted(set(cos.tolist()))]:
        acc = sum((c > tau) == s for c, s in zip(cos, issame, strict=True)) / cos.size
        best = max(best, acc)
    return best


def test_global_threshold_is_exact(make_pairs):
    emb, issame = make_pairs(400, noise=1.4, seed=5)
    _, cos = scores_of(emb, issame)
    cos = np.round(cos, 2)  # ties on purpose
    tau, acc = V.best_global_threshold(cos, issame)
    assert acc == pytest.approx(reference_global(cos, issame), abs=1e-15)
    assert V.apply_threshold(cos, issame, tau)["accuracy"] == pytest.approx(acc, abs=1e-15)
    # a fine grid never beats the oracle
    grid = np.linspace(-1, 1, 2001)
    assert max(np.mean((cos > t) == issame) for t in grid) <= acc


def test_global_threshold_is_a_midpoint_and_handles_extremes():
    cos = np.array([0.1, 0.3, 0.5, 0.7])
    issame = np.array([False, False, True, True])
    tau, acc = V.best_global_threshold(cos, issame)
    assert (tau, acc) == (pytest.approx(0.4), 1.0)
    # all genuine below all impostor: best is "all different" or "all same"
    tau, acc = V.best_global_threshold(cos, ~issame)
    assert acc == 0.5
    assert V.apply_threshold(cos, ~issame, tau)["accuracy"] == 0.5
    tau, acc = V.best_global_threshold(np.array([0.1, 0.2, 0.3]), np.array([True, True, False]))
    assert tau < 0.1 and acc == pytest.approx(2 / 3)


def reference_tar_at_far(cos, issame, far):
    """Max TAR over every threshold whose FAR is at most the target."""
    gen, imp = cos[issame], cos[~issame]
    best = 0.0
    for tau in [*imp.tolist(), cos.max()]:
        if np.mean(imp > tau) <= far:
            best = max(best, np.mean(gen > tau))
    return best


def test_tar_at_far_matches_reference(make_pairs):
    emb, issame = make_pairs(2500, noise=1.2, seed=7)
    _, cos = scores_of(emb, issame)
    got = V.tar_at_far(cos, issame)
    n_imp = int((~issame).sum())
    assert set(got) == {schema.rate_key(f) for f in V.TARGET_FARS if f * n_imp >= 1}
    assert "1e-03" in got and "1e-04" not in got
    for key, entry in got.items():
        far = float(key)
        assert entry["tar"] == pytest.approx(reference_tar_at_far(cos, issame, far), abs=1e-15)
        assert entry["far"] <= far
        check = V.apply_threshold(cos, issame, entry["threshold"])
        assert (check["tar"], check["far"]) == (entry["tar"], entry["far"])


def test_eer_and_auc_match_sklearn(make_pairs):
    emb, issame = make_pairs(1500, noise=1.5, seed=11)
    _, cos = scores_of(emb, issame)
    for scores in (cos, np.round(cos, 2)):
        fpr, tpr, _ = roc_curve(issame, scores)
        ref_eer = brentq(lambda x, fpr=fpr, tpr=tpr: 1.0 - x - np.interp(x, fpr, tpr), 0, 1)
        assert V.equal_error_rate(scores, issame) == pytest.approx(ref_eer, abs=1e-9)
        assert V.roc_auc(scores, issame) == pytest.approx(roc_auc_score(issame, scores), 1e-12)


def test_roc_points_lie_on_sklearn_roc(make_pairs):
    emb, issame = make_pairs(1000, noise=1.5, seed=13)
    _, cos = scores_of(emb, issame)
    fpr, tpr, _ = roc_curve(issame, cos, drop_intermediate=False)
    pts = V.roc_points(cos, issame)
    vertices = set(zip(np.round(fpr, 12), np.round(tpr, 12), strict=True))
    for far, tar in zip(pts["far"], pts["tar"], strict=True):
        assert (round(far, 12), round(tar, 12)) in vertices


def test_report_fields_and_flip_invariance(make_pairs):
    emb, issame = make_pairs(600, seed=17)
    report = V.evaluate_verification(emb * 3.0, issame, source="x.bin")
    for field in (
        "accuracy_10fold_mean",
        "accuracy_10fold_std",
        "val_at_far_1e-3",
        "global_threshold",
        "global_accuracy",
        "eer",
        "auc",
        "tar_at_far",
    ):
        assert field in report
    assert report["accuracy_10fold_mean"] >= report["global_accuracy"] - 0.02
    assert sum(report["histogram"]["genuine"]) == report["genuine_pairs"]
    curve = report["accuracy_curve"]["accuracy"]
    assert max(curve) <= report["global_accuracy"]
    # scaling rows does not change anything: embeddings are normalized inside
    again = V.evaluate_verification(emb, issame)
    assert again["global_accuracy"] == report["global_accuracy"]


def test_transfer_table_diagonal_is_the_oracle(make_pairs):
    sets = {}
    for name, noise in (("easy", 0.8), ("hard", 1.6)):
        emb, issame = make_pairs(800, noise=noise, seed=int(noise * 10))
        sets[name] = (scores_of(emb, issame)[1], issame)
    table = V.transfer_table(sets, target_far=1e-2)
    for name, (cos, issame) in sets.items():
        _, acc = V.best_global_threshold(cos, issame)
        assert table["sources"][name]["global"][name]["accuracy"] == pytest.approx(acc)
        assert table["sources"][name]["at_far"][name]["far"] <= 1e-2


def reference_far_threshold(cos, issame, far):
    """The lowest impostor score whose pass rate (impostors strictly above it) is <= far."""
    imp = sorted(cos[~issame].tolist())
    return min(t for t in imp if sum(x > t for x in imp) / len(imp) <= far)


def rates_by_loop(cos, issame, tau):
    same = [c > tau for c in cos.tolist()]
    pairs = list(zip(same, issame.tolist(), strict=True))
    gen = [s for s, y in pairs if y]
    imp = [s for s, y in pairs if not y]
    return {
        "accuracy": sum(s == y for s, y in pairs) / len(pairs),
        "tar": sum(gen) / len(gen),
        "far": sum(imp) / len(imp),
    }


def test_transfer_table_applies_each_row_threshold_to_every_set(make_pairs):
    sets = {}
    for name, noise, shift in (("easy", 0.8, 0.0), ("hard", 1.6, 0.0), ("shifted", 1.0, 0.3)):
        emb, issame = make_pairs(800, noise=noise, seed=int(noise * 10))
        cos = scores_of(emb, issame)[1]
        sets[name] = (np.clip(cos + shift, -1, 1), issame)
    table = V.transfer_table(sets, target_far=1e-2)
    for src, (cos, issame) in sets.items():
        entry = table["sources"][src]
        # the row's thresholds: the oracle global one and the FAR <= 1e-2 one, by brute force
        on_row = V.apply_threshold(cos, issame, entry["global_threshold"])["accuracy"]
        assert on_row == pytest.approx(reference_global(cos, issame), abs=1e-15)
        assert entry["far_threshold"] == reference_far_threshold(cos, issame, 1e-2)
        for dst, (dst_cos, dst_same) in sets.items():
            for column, tau in (
                ("global", entry["global_threshold"]),
                ("at_far", entry["far_threshold"]),
            ):
                want = rates_by_loop(dst_cos, dst_same, tau)
                got = entry[column][dst]
                assert got == pytest.approx(want, abs=1e-15), (src, dst, column)
    # the sets differ, so a row's threshold scores the other sets differently from their own
    own = {n: table["sources"][n]["global"][n]["accuracy"] for n in sets}
    assert any(
        table["sources"][s]["global"][d]["accuracy"] != own[d] for s in sets for d in sets if s != d
    )


def test_bad_inputs_raise_one_line_errors(make_pairs):
    emb, issame = make_pairs(50)
    with pytest.raises(EvalError, match="99 embeddings for 50 pairs"):
        V.evaluate_verification(emb[:99], issame, source="lfw.bin")
    bad = emb.copy()
    bad[7, 3] = np.nan
    with pytest.raises(DataError, match="row 7 is not finite"):
        V.evaluate_verification(bad, issame)
    with pytest.raises(EvalError, match="both genuine and impostor"):
        V.evaluate_verification(emb, np.ones(50, bool))
    with pytest.raises(EvalError, match="both genuine and impostor"):
        V.evaluate_verification(emb, np.zeros(50, bool))
    with pytest.raises(EvalError, match="folds"):
        V.evaluate_verification(emb[:8], issame[:4] | np.array([0, 1, 0, 0], bool))
    with pytest.raises(EvalError) as info:
        V.evaluate_verification(emb[:99], issame)
    assert "\n" not in str(info.value)
