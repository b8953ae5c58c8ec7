"""facebench.study.measure: feature geometry against plain loops; the decision point rule."""

import math

import numpy as np
import pytest
import torch

from facebench.heads import build_head
from facebench.study.measure import decision_point, feature_geometry

# pytest.approx's default (rel 1e-6) compares float64 arithmetic of a few terms (rounding about
# 1e-16 relative), on a head's float32 parameters as stored: it checks the formula, not rounding.


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


def _unit_embedding(cosine: float) -> torch.Tensor:
    """A float64 unit vector at ``cosine`` to e0 (and orthogonal to e2, e3)."""
    return torch.tensor([[cosine, math.sqrt(1 - cosine**2), 0.0, 0.0]], dtype=torch.float64)


@pytest.mark.parametrize("margin", [0.0, 0.4])
def test_decision_point_of_a_unified_bce_head_is_where_the_logits_are_opposite(margin):
    head = build_head("bce_u", 4, 3, normalized=True, scale=32.0, margin=margin)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
        head.bias.fill_(9.6)
    point = decision_point(head)
    assert point == pytest.approx(9.6 / 32 + margin / 2)
    # at the point the negative logit s and the positive one (s - γ m) are opposite; scores
    # computes in the embedding's float64: 4 roundings (norm, dot, x 32, - b) of terms < 42
    score = float(head.scores(_unit_embedding(point))[0, 0])
    assert score == pytest.approx(-(score - 32.0 * margin), abs=2 * 4 * 42 * 2.0**-52)


def test_decision_point_of_per_class_biases_is_zero_on_w_x_minus_b_k():
    linear = build_head("bce_d", 4, 3, normalized=False)
    assert decision_point(linear) == 0.0
    assert decision_point(build_head("bce_d", 4, 3, normalized=True, margin=0.2)) == 0.1
    unified = build_head("bce_u", 4, 3, normalized=False)
    assert decision_point(unified) == pytest.approx(float(unified.bias.detach()))


def test_decision_point_of_sphereface2_is_its_band_centre_and_softmax_has_none():
    head = build_head("sphereface2", 4, 3)
    point = decision_point(head)
    # g(cos) = 2((cos + 1)/2)^t - 1 at the point is b/r: the middle of g - m and g + m
    g = 2 * ((point + 1) / 2) ** head.t - 1
    assert g == pytest.approx(max(-1.0, min(1.0, float(head.bias.detach()) / head.scale)))
    assert decision_point(build_head("softmax", 4, 3, normalized=False)) is None
    assert decision_point(build_head("cosface", 4, 3)) is None
