"""Alignment: Umeyama vs a direct least-squares solve, equality with insightface's norm_crop,
and real-photo geometry with the photos shipped inside the insightface package."""

import os
import warnings

import cv2
import numpy as np
import pytest

from facebench.data.align import (
    ARCFACE_TEMPLATE,
    T1_LANDMARKS,
    align_face,
    estimate_similarity,
    insightface_sample_faces,
)
from facebench.data.images import read_image
from facebench.errors import DataError


def photo(name):
    import insightface

    return read_image(os.path.join(os.path.dirname(insightface.__file__), "data/images", name))


def lstsq_similarity(src, dst):
    """Reference: x' = a x - b y + tx, y' = b x + a y + ty as one linear least-squares problem."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def similarity(scale, angle_deg, shift):
    t = np.deg2rad(angle_deg)
    return np.array(
        [
            [scale * np.cos(t), -scale * np.sin(t), shift[0]],
            [scale * np.sin(t), scale * np.cos(t), shift[1]],
        ]
    )


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_recovers_exact_similarity_and_matches_least_squares():
    rng = np.random.default_rng(0)
    for _ in range(20):
        true = similarity(rng.uniform(0.2, 3), rng.uniform(-170, 170), rng.uniform(-50, 50, 2))
        src = rng.uniform(0, 200, (5, 2))
        # float64, both backward stable: within cond (< 1e3 here) * eps64 * |entries| (< 1e3)
        np.testing.assert_allclose(estimate_similarity(src, apply(true, src)), true, atol=1e-9)
        noisy = apply(true, src) + rng.normal(0, 2, (5, 2))
        np.testing.assert_allclose(
            estimate_similarity(src, noisy), lstsq_similarity(src, noisy), atol=1e-9
        )


def test_mirrored_points_give_a_rotation_not_a_reflection():
    src = ARCFACE_TEMPLATE.copy()
    mirrored = src * [-1, 1]
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_equals_insightface_norm_crop_on_a_real_photo():
    from insightface.utils import face_align
    from skimage.transform import SimilarityTransform

    group = photo("t1.jpg")
    for points in T1_LANDMARKS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            theirs = face_align.norm_crop(group, points.astype(np.float32), 112)
            # estimate_norm is skimage's Umeyama fed float32 points; in float64 both solves are
            # backward stable: each within cond (< 3e4: 5 points 50 px apart, ~800 px from the
            # origin) * eps64 * |entries| (< 610) = 4e-9 of the exact fit
            fit = SimilarityTransform()
            fit.estimate(points, ARCFACE_TEMPLATE)
        ours_m = estimate_similarity(points, ARCFACE_TEMPLATE)
        np.testing.assert_allclose(ours_m, fit.params[:2], rtol=0, atol=2 * 4e-9)
        ours = align_face(group, points)
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float32 vs float64 rounding only


def test_real_photo_known_transform_is_undone():
    """Tom_Hanks_54745.png is a 112x112 ArcFace crop: move it by a known similarity onto a larger
    canvas, carry the template landmarks along, align back, and get the original face again."""
    tom = photo("Tom_Hanks_54745.png")
    forward = similarity(2.3, 25.0, (160.0, 40.0))
    canvas = cv2.warpAffine(tom, forward, (480, 480), flags=cv2.INTER_CUBIC)
    landmarks = apply(forward, ARCFACE_TEMPLATE)
    crop = align_face(canvas, landmarks)
    inner = (slice(20, 92), slice(20, 92))  # away from borders the forward warp blurred in black
    err = np.abs(crop[inner].astype(float) - tom[inner].astype(float)).mean()
    assert err < 4.0
    # the eyes, nose and mouth land on the template points: map the landmarks with the alignment
    back = estimate_similarity(landmarks, ARCFACE_TEMPLATE)
    # float64: within cond (2e3) * eps64 * |terms| (< 300 px) ~ 1.3e-10 of the template
    np.testing.assert_allclose(apply(back, landmarks), ARCFACE_TEMPLATE, rtol=0, atol=1e-9)


def test_hand_picked_landmarks_fit_the_template_and_crop_is_a_face():
    """Landmarks picked by eye on t1.jpg fit the template within a few pixels (a face's geometry),
    and the crop at 224 is the 112 crop scaled up."""
    group = photo("t1.jpg")
    for points in T1_LANDMARKS:
        mapped = apply(estimate_similarity(points, ARCFACE_TEMPLATE), points)
        assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 6.0  # both men smile: nose low
        small, big = align_face(group, points, 112), align_face(group, points, 224)
        half = cv2.resize(big, (112, 112), interpolation=cv2.INTER_AREA)
        assert np.abs(half.astype(float) - small.astype(float)).mean() < 6.0
    faces = insightface_sample_faces()
    assert faces.shape == (3, 112, 112, 3) and faces.dtype == np.uint8


def test_bad_landmarks_and_sizes():
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(DataError, match="5 \\(x, y\\) points"):
        align_face(image, np.zeros((4, 2)))
    with pytest.raises(DataError, match="coincide"):
        align_face(image, np.ones((5, 2)))
    with pytest.raises(DataError, match="multiple of 112 or 128"):
        align_face(image, ARCFACE_TEMPLATE, size=100)
    with pytest.raises(DataError, match="finite"):
        align_face(image, np.full((5, 2), np.nan))
