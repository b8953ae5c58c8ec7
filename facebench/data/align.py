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


def template_sizes_include(size: int) -> bool:
    """Whether faces can be aligned to a ``size`` crop: 112k, or 128k (insightface's rule)."""
    return size > 0 and (size % 112 == 0 or size % 128 == 0)


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


def _points(values, where: str) -> np.ndarray:
    """Ten numbers (or five pairs) -> float ``(5, 2)``; DataError naming ``where`` otherwise."""
    try:
        points = np.asarray(values, dtype=np.float64).reshape(5, 2)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: expected 5 (x, y) landmarks, got {values!r}") from exc
    if not np.isfinite(points).all():
        raise DataError(f"{where}: landmarks must be finite numbers")
    return points


def read_landmarks(path: str) -> list[tuple[str, np.ndarray]]:
    """``(image, (5, 2) landmarks)`` per face, in file order, from one of three formats:

    - IJB 5-point text (``.txt``): ``image x1 y1 ... x5 y5 [faceness]`` per line;
    - CSV (``.csv``): ``image,x1,y1,...,x5,y5`` with or without a header line;
    - JSON (``.json``): ``{"image": [[x, y] x 5], ...}`` or ``[{"image": .., "landmarks": ..}]``.
    """
    import csv
    import json

    path = str(path)
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, newline="") as f:
            if ext == ".json":
                data = json.load(f)
                rows = (
                    data.items()
                    if isinstance(data, dict)
                    else ((item["image"], item["landmarks"]) for item in data)
                )
                return [(str(k), _points(v, f"{path}: {k}")) for k, v in rows]
            lines = list(csv.reader(f)) if ext == ".csv" else [ln.split() for ln in f]
    except OSError as exc:
        raise DataError(f"{path}: cannot read landmarks ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a landmark JSON ({exc})") from exc
    faces = []
    for number, fields in enumerate(lines, 1):
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) not in (11, 12):
            raise DataError(
                f"{path}: line {number}: expected image + 10 coordinates, got {len(fields)} fields"
            )
        if number == 1 and ext == ".csv" and not _is_number(fields[1]):
            continue  # header line
        faces.append((fields[0], _points(fields[1:11], f"{path}: line {number}")))
    return faces


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_detector(path: str, input_size: int = 640, threshold: float = 0.5):
    """An SCRFD / RetinaFace ONNX face detector through insightface's model zoo (CPU)."""
    from insightface.model_zoo import get_model

    if not os.path.isfile(path):
        raise DataError(f"{path}: detector model not found")
    try:
        detector = get_model(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime / protobuf errors of many types
        raise DataError(f"{path}: insightface cannot load the detector ({exc})") from exc
    if detector is None or getattr(detector, "taskname", None) != "detection":
        kind = getattr(detector, "taskname", "an unknown model")
        raise DataError(f"{path}: not a face detector (insightface sees {kind})")
    detector.prepare(-1, input_size=(input_size, input_size), det_thresh=threshold)
    return detector


def detect_landmarks(detector, rgb: np.ndarray) -> np.ndarray | None:
    """Landmarks (5, 2) of the largest face ``detector`` finds in ``rgb``; None if it finds none."""
    boxes, points = detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if boxes is None or len(boxes) == 0 or points is None:
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(points[int(np.argmax(areas))], dtype=np.float64)
