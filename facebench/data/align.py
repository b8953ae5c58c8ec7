"""5-point similarity alignment onto the ArcFace 112x112 template (Umeyama least squares)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from facebench.errors import DataError

#: Left eye, right eye, nose tip, left and right mouth corner in a 112x112 ArcFace crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def estimate_similarity(src_points: np.ndarray, dst_points: np.ndarray) -> np.ndarray:
    """2x3 matrix of the similarity (scale, rotation, shift) mapping src onto dst in least squares.

    Umeyama (1991): centre both point sets, take the SVD of their covariance, fix the reflection.
    """
    src = np.asarray(src_points, dtype=np.float64)
    dst = np.asarray(dst_points, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise DataError(
            f"landmarks: expected two (K, 2) point sets, got {src.shape} and {dst.shape}"
        )
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise DataError("landmarks: points must be finite")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var == 0:
        raise DataError("landmarks: all source points coincide")
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = (sigma * d).sum() / src_var
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def template_for_size(size: int) -> np.ndarray:
    """The template scaled to a ``size`` crop (112k; or 128k with insightface's 8 px shift)."""
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * (size / 112.0)
    if size % 128 == 0:
        return ARCFACE_TEMPLATE * (size / 128.0) + np.array([8.0 * size / 128.0, 0.0])
    raise DataError(f"alignment: crop size must be a multiple of 112 or 128, got {size}")


def align_face(rgb: np.ndarray, landmarks5: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``rgb`` so its 5 landmarks land on the template; black border."""
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2):
        raise DataError(f"landmarks: expected 5 (x, y) points, got shape {points.shape}")
    matrix = estimate_similarity(points, template_for_size(size))
    return cv2.warpAffine(rgb, matrix, (size, size), borderValue=0.0)


#: Five landmarks picked by eye (zoomed, 10 px grid) for two faces of insightface's sample t1.jpg.
T1_LANDMARKS = np.array(
    [
        [[493, 323], [538, 333], [511, 359], [487, 370], [528, 380]],
        [[767, 397], [813, 402], [788, 422], [768, 440], [813, 442]],
    ],
    dtype=np.float64,
)


def insightface_sample_faces(size: int = 112) -> np.ndarray:
    """Real aligned faces from the photos shipped in the insightface package: uint8 (3, s, s, 3).

    Tom_Hanks_54745.png is already a 112x112 ArcFace crop; two faces of t1.jpg are aligned here.
    """
    from importlib.util import find_spec

    from facebench.data.images import read_image

    spec = find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("insightface is not installed: its sample photos are not available")
    images = os.path.join(spec.submodule_search_locations[0], "data", "images")
    tom = read_image(os.path.join(images, "Tom_Hanks_54745.png"))
    if size != 112:
        tom = align_face(tom, ARCFACE_TEMPLATE, size)
    group = read_image(os.path.join(images, "t1.jpg"))
    return np.stack([tom] + [align_face(group, points, size) for points in T1_LANDMARKS])
