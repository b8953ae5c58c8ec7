"""Image decoding and the model input convention: the one place colour order lives.

Images inside facebench are ``uint8`` RGB arrays of shape ``(H, W, 3)`` (or ``(N, H, W, 3)``) up
to the model's door: :func:`facebench.data.model_input.model_input` turns a batch into model input.
InsightFace packs store JPEGs encoded from BGR, so decoding goes through OpenCV and swaps to RGB;
encoding swaps back, so packs written here read the same in InsightFace's own tools.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facebench.errors import DataError

_JPEG_START = b"\xff\xd8"
#: What a complete JPEG ends with (its end-of-image marker).
JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class InputConvention:
    """How a model wants its input: channel order, ``(x - mean) / std`` and size (H, W)."""

    color: str = "RGB"
    mean: float = 127.5
    std: float = 127.5
    size: tuple[int, int] = (112, 112)

    def to_dict(self) -> dict:
        """A JSON-friendly form (stored in model artifacts and embedding sidecars)."""
        return {**asdict(self), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: dict) -> InputConvention:
        """Inverse of :meth:`to_dict`."""
        if data.get("color") not in ("RGB", "BGR"):
            color = data.get("color")
            raise DataError(f"input convention: color must be RGB or BGR, got {color!r}")
        return cls(
            color=data["color"],
            mean=float(data["mean"]),
            std=float(data["std"]),
            size=(int(data["size"][0]), int(data["size"][1])),
        )


#: The convention of facebench and InsightFace recognition models: RGB, (x/255 - 0.5)/0.5, 112x112.
DEFAULT_CONVENTION = InputConvention()


def decode_image(data: bytes | np.ndarray, source: str = "<bytes>") -> np.ndarray:
    """Decode image bytes (JPEG/PNG; ``bytes`` or a uint8 array) to uint8 RGB ``(H, W, 3)``;
    ``source`` names it in errors.

    The codec writes RGB itself (no separate BGR->RGB pass). A JPEG without an end-of-image
    marker is refused: OpenCV would fill the missing part grey.
    """
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB) if len(buf) else None
    if rgb is None or rgb.size == 0:
        raise DataError(f"{source}: image does not decode ({len(buf)} bytes)")
    if buf[:2].tobytes() == _JPEG_START and not _ends_jpeg(buf):
        raise DataError(f"{source}: truncated JPEG ({len(buf)} bytes, no end-of-image marker)")
    return rgb


def _ends_jpeg(buf: np.ndarray) -> bool:
    """Whether a JPEG's bytes hold an end-of-image marker after the start marker (checked at
    the very end first: where encoders put it)."""
    return buf[-2:].tobytes() == JPEG_END or buf.tobytes().rfind(JPEG_END) >= 2


def read_bytes(path: str) -> bytes:
    """The bytes of an image file; a missing, dangling or unreadable file is a DataError."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror})") from exc


def read_image(path: str) -> np.ndarray:
    """Read an image file to uint8 RGB ``(H, W, 3)``."""
    return decode_image(read_bytes(path), source=str(path))


def encode_image(rgb: np.ndarray, ext: str = ".jpg", quality: int = 95) -> bytes:
    """Encode uint8 RGB ``(H, W, 3)`` to bytes (JPEG by default, stored BGR like InsightFace)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode image of shape {rgb.shape} as {ext}")
    return buf.tobytes()


def hflip(rgb: np.ndarray) -> np.ndarray:
    """Horizontal flip of ``(H, W, 3)`` or ``(N, H, W, 3)`` images."""
    return np.ascontiguousarray(rgb[..., ::-1, :])
