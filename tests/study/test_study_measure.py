"""facebench.study.measure: feature geometry against plain loops."""

import math

import numpy as np
import pytest

from facebench.study.measure import feature_geometry


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_feature_geometry_against_loops():
    rng = np.random.default_rng(0)
    labels = np.array([2, 0, 2, 1, 0, 1, 1, 2])
    features = rng.normal(size=(8, 5)) + 2 * np.eye(5)[labels]
    got = feature_geometry(features, labels)
    centres = {}
    for c in (0, 1, 2):
        members = [f / np.linalg.norm(f) for f, y in zip(features, labels, strict=True) if y == c]
        centres[c] = [sum(m[j] for m in members) / len(members) for j in range(5)]
    intra = sum(_cos(f, centres[y]) for f, y in zip(features, labels, strict=True)) / 8
    inter = [_cos(centres[a], centres[b]) for a in (0, 1, 2) for b in (0, 1, 2) if a != b]
    assert got["intra_class_cosine"] == pytest.approx(intra)
    assert got["inter_class_cosine_mean"] == pytest.approx(sum(inter) / len(inter))
    assert got["inter_class_cosine_max"] == pytest.approx(max(inter))


def test_identical_classes_are_not_separated():
    features = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [1.0, 0.0]])
    got = feature_geometry(features, np.array([0, 0, 1, 1]))
    assert got["intra_class_cosine"] == pytest.approx(1.0)
    assert got["inter_class_cosine_max"] == pytest.approx(1.0)
