"""Image decoding and the model input convention: the one place colour order lives.

Images inside facebench are ``uint8`` RGB arrays of shape ``(H, W, 3)`` (or ``(N, H, W, 3)``) up
to the model's door: :func:`facebench.data.model_input.model_input` turns a batch into model input.
InsightFace packs store JPEGs encoded from BGR, so decoding goes through OpenCV and swaps to RGB;
encoding swaps back, so packs written here read the same in InsightFace's own tools.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facebench.errors import DataError

_JPEG_START = b"\xff\xd8"
#: What a complete JPEG ends with (its end-of-image marker).
JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"
#: The most pixels an image may have to be decoded (2^26, e.g. 8192x8192: 192 MiB as RGB); the
#: size is read from the JPEG or PNG header first, so a larger one is refused before decoding.
MAX_IMAGE_PIXELS = 1 << 26
# JPEG start-of-frame markers (they carry the image size): C0-CF except DHT, JPG and DAC.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SEGMENT = struct.Struct(">BBH")
_SIZE = struct.Struct(">HH")


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
    size = header_size(buf)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{source}: image is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels), over the "
            f"{MAX_IMAGE_PIXELS:,} facebench decodes (its header says so; nothing was decoded)"
        )
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB) if len(buf) else None
    if rgb is None or rgb.size == 0:
        raise DataError(f"{source}: image does not decode ({len(buf)} bytes)")
    if buf[:2].tobytes() == _JPEG_START and not _ends_jpeg(buf):
        raise DataError(f"{source}: truncated JPEG ({len(buf)} bytes, no end-of-image marker)")
    return rgb


def header_size(buf: bytes | np.ndarray) -> tuple[int, int] | None:
    """``(H, W)`` from a JPEG's frame header or a PNG's IHDR, without decoding; None for other
    or unreadable bytes (the decoder then judges them)."""
    start = bytes(buf[:8])
    if start == _PNG_START and len(buf) >= 24:
        width, height = struct.unpack_from(">II", buf, 16)
        return height, width
    if start[:2] != _JPEG_START:
        return None
    pos = 2
    while pos + 9 <= len(buf):
        mark, marker, length = _SEGMENT.unpack_from(buf, pos)
        if mark != 0xFF:
            return None
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker in _JPEG_FRAMES:
            return _SIZE.unpack_from(buf, pos + 5)
        elif marker == 0xDA:  # start of scan without a frame: not a JPEG to trust
            return None
        else:
            pos += 2 + length
    return None


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
