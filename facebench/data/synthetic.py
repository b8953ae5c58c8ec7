"""Synthetic identities: face-like drawings with a stable look per identity, as packs and bins.

Each identity draws a fixed appearance (skin tone and texture, face and jaw shape, ears, hair style
and colour, eye/brow/nose/mouth geometry and colours, optional glasses, moustache, beard, mole).
Each image of it varies by yaw, pitch, expression, rotation, scale, shift, background,
illumination, blur, noise, JPEG quality and occlusion, all scaled by ``difficulty``. Every random
draw comes from a generator seeded by ``(seed, stream, identity, image)``, so output is
byte-identical for a seed and independent of the order in which images are made.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from tqdm import tqdm

from facebench.data.bins import write_verification_bin
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack
from facebench.errors import ConfigError
from facebench.fileio import atomic_dir, write_text
from facebench.procs import worker_init

log = logging.getLogger(__name__)

SUMMARY_FILE = "synth.json"

_SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn with 1/16 pixel precision
_FIX = 1 << _SHIFT
_AA = cv2.LINE_AA

# identity / image random streams
_IDENTITY, _TRAIN_IMAGE, _PAIRS = 0, 1, 2

_HAIR_COLOURS = np.array(
    [
        [20, 15, 12],
        [55, 35, 20],
        [100, 65, 35],
        [160, 120, 70],
        [200, 170, 110],
        [140, 60, 25],
        [150, 150, 150],
        [225, 225, 220],
    ],
    dtype=np.float64,
)
_IRIS_COLOURS = np.array(
    [[60, 35, 20], [100, 70, 40], [70, 110, 160], [80, 120, 80], [40, 30, 25]], dtype=np.float64
)
_HAIR_STYLES = ("bald", "short", "long", "fringe", "side", "curly")


@dataclass(frozen=True)
class SynthConfig:
    """What `facebench data synth` makes; see :func:`write_synthetic_dataset`."""

    identities: int = 100
    images_per_identity: int = 20
    test_images_per_identity: int = 4
    val_identities: int = 100
    val_images_per_identity: int = 6
    pairs: int = 600
    difficulty: float = 1.0
    hard_difficulty: float = 1.5
    image_size: int = 112
    seed: int = 0

    def check(self) -> None:
        """ConfigError for values that cannot make a dataset."""
        if self.identities < 2 or self.images_per_identity < 1:
            raise ConfigError("synth: need at least 2 identities and 1 image per identity")
        if self.test_images_per_identity < 0:
            raise ConfigError("synth: test images per identity must be >= 0")
        if self.pairs <= 0 or self.pairs % 20:
            raise ConfigError(
                f"synth: pairs must be a positive multiple of 20 (10 folds x half same, half "
                f"different), got {self.pairs}"
            )
        if self.val_identities < 2 or self.val_images_per_identity < 2:
            raise ConfigError("synth: need at least 2 val identities with 2 images each")
        if self.difficulty < 0 or self.hard_difficulty < 0:
            raise ConfigError("synth: difficulty must be >= 0")
        if self.image_size < 32:
            raise ConfigError(f"synth: image size must be at least 32, got {self.image_size}")


@dataclass(frozen=True)
class Identity:
    """The stable appearance of one synthetic person, in 112x112 canonical coordinates."""

    skin: tuple
    face_w: float
    face_h: float
    jaw_w: float
    face_y: float
    ear_size: float
    hair: tuple
    hair_style: str
    hairline: float
    hair_len: float
    eye_y: float
    eye_dx: float
    eye_rx: float
    eye_ry: float
    eye_tilt: float
    iris: tuple
    brow_gap: float
    brow_thick: float
    brow_tilt: float
    brow_len: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    lip: tuple
    glasses: int
    glasses_colour: tuple
    moustache: bool
    beard: bool
    mole: tuple | None
    texture_seed: int
    texture_amp: float


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one identity's appearance."""
    tone = rng.uniform()
    skin = np.array([236, 204, 180]) * (1 - tone) + np.array([98, 64, 44]) * tone
    skin = skin + rng.normal(0, 8, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.normal(0, 12, 3)
    lip = skin * 0.55 + np.array([175, 55, 70]) * 0.45 + rng.normal(0, 8, 3)
    glasses = int(rng.choice([0, 0, 0, 0, 0, 1, 2]))
    return Identity(
        skin=tuple(np.clip(skin, 30, 250)),
        face_w=rng.uniform(27, 37),
        face_h=rng.uniform(37, 47),
        jaw_w=rng.uniform(0.65, 0.98),
        face_y=rng.uniform(58, 64),
        ear_size=rng.uniform(4, 8),
        hair=tuple(np.clip(hair, 5, 250)),
        hair_style=_HAIR_STYLES[rng.integers(len(_HAIR_STYLES))],
        hairline=rng.uniform(-4, 8),
        hair_len=rng.uniform(0, 40),
        eye_y=rng.uniform(47, 56),
        eye_dx=rng.uniform(12, 19),
        eye_rx=rng.uniform(4.0, 7.0),
        eye_ry=rng.uniform(1.8, 3.8),
        eye_tilt=rng.uniform(-12, 12),
        iris=tuple(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] + rng.normal(0, 8, 3)),
        brow_gap=rng.uniform(5, 11),
        brow_thick=rng.uniform(1.0, 4.0),
        brow_tilt=rng.uniform(-18, 18),
        brow_len=rng.uniform(5, 10),
        nose_y=rng.uniform(64, 75),
        nose_w=rng.uniform(4, 9),
        mouth_y=rng.uniform(81, 91),
        mouth_w=rng.uniform(8, 15),
        lip_thick=rng.uniform(1.0, 4.0),
        lip=tuple(np.clip(lip, 20, 250)),
        glasses=glasses,
        glasses_colour=tuple(rng.uniform(0, 160, 3)),
        moustache=bool(rng.uniform() < 0.2),
        beard=bool(rng.uniform() < 0.15),
        mole=(rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.7)) if rng.uniform() < 0.3 else None,
        texture_seed=int(rng.integers(2**31)),
        texture_amp=rng.uniform(4, 16),
    )


@dataclass(frozen=True)
class Variation:
    """What changes between two images of one identity (drawn per image)."""

    yaw: float
    pitch: float
    mouth_open: float
    smile: float
    blink: float
    angle: float
    scale: float
    shift: tuple
    background: tuple
    background_grad: tuple
    gain: float
    cast: tuple
    light_dir: float
    light_amp: float
    blur: float
    noise: float
    noise_index: int
    noise_offset: tuple
    occlusion: str
    occlusion_box: tuple
    occlusion_colour: tuple


def sample_variation(rng: np.random.Generator, difficulty: float) -> Variation:
    """Draw one image's pose, expression, camera and occlusion, scaled by ``difficulty``."""
    d = difficulty
    occlusion = "none"
    if rng.uniform() < min(0.25 * d, 0.6):
        occlusion = str(rng.choice(["sunglasses", "mask", "hand", "hat"]))
    return Variation(
        yaw=float(np.clip(rng.normal(0, 0.3 * d), -0.9, 0.9)),
        pitch=float(np.clip(rng.normal(0, 0.25 * d), -0.7, 0.7)),
        mouth_open=float(max(0.0, rng.normal(0, 0.5 * d))),
        smile=float(rng.normal(0, 0.6 * d)),
        blink=float(np.clip(1 - abs(rng.normal(0, 0.3 * d)), 0.1, 1)),
        angle=float(rng.normal(0, 7 * d)),
        scale=float(np.exp(rng.normal(0, 0.07 * d))),
        shift=(float(rng.normal(0, 2.5 * d)), float(rng.normal(0, 2.5 * d))),
        background=tuple(rng.uniform(0, 255, 3)),
        background_grad=tuple(rng.normal(0, 40, 2)),
        gain=float(np.exp(rng.normal(0, 0.22 * d))),
        cast=tuple(np.exp(rng.normal(0, 0.06 * d, 3))),
        light_dir=float(rng.uniform(0, 2 * np.pi)),
        light_amp=float(rng.uniform(0, min(0.45 * d, 0.8))),
        blur=float(rng.uniform(0, 1.4 * d)) if rng.uniform() < 0.6 else 0.0,
        noise=float(rng.uniform(0, 7 * d)),
        noise_index=int(rng.integers(1 << 30)),
        noise_offset=(int(rng.integers(1 << 30)), int(rng.integers(1 << 30))),
        occlusion=occlusion,
        occlusion_box=tuple(rng.uniform(0, 1, 4)),
        occlusion_colour=tuple(rng.uniform(0, 255, 3)),
    )


class FaceRenderer:
    """Draws identities under variations at one image size; caches textures and noise fields."""

    def __init__(self, size: int = 112, seed: int = 0, noise_fields: int = 16):
        self.size = size
        self.unit = size / 112.0
        rng = np.random.default_rng([seed, 99])
        self._noise = rng.standard_normal((noise_fields, 2 * size, 2 * size, 3), dtype=np.float32)
        self._textures: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _p(self, x: float, y: float) -> tuple[int, int]:
        """A canonical 112-unit point as a cv2 fixed-point pixel coordinate."""
        return round(x * self.unit * _FIX), round(y * self.unit * _FIX)

    def _r(self, rx: float, ry: float) -> tuple[int, int]:
        return max(1, round(rx * self.unit * _FIX)), max(1, round(ry * self.unit * _FIX))

    def _t(self, thickness: float) -> int:
        return max(1, round(thickness * self.unit))

    def _ellipse(self, img, centre, axes, angle, colour, thickness=-1, start=0, end=360):
        cv2.ellipse(
            img, self._p(*centre), self._r(*axes), angle, start, end, colour, thickness, _AA, _SHIFT
        )

    def _poly(self, img, points, colour):
        pts = np.array([self._p(x, y) for x, y in points], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour, _AA, _SHIFT)

    def _line(self, img, a, b, colour, thickness):
        cv2.line(img, self._p(*a), self._p(*b), colour, self._t(thickness), _AA, _SHIFT)

    def texture(self, ident: Identity) -> tuple[np.ndarray, np.ndarray]:
        """Per-identity skin texture (blotches + freckle grain) as uint8 (lighten, darken) parts."""
        tex = self._textures.get(ident.texture_seed)
        if tex is None:
            rng = np.random.default_rng(ident.texture_seed)
            size = (self.size, self.size)
            coarse = rng.standard_normal((6, 6)).astype(np.float32)
            fine = rng.standard_normal((28, 28)).astype(np.float32)
            field = cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC)
            field += 0.6 * cv2.resize(fine, size, interpolation=cv2.INTER_LINEAR)
            field = np.repeat((ident.texture_amp * field)[..., None], 3, axis=2)
            tex = (
                np.clip(field, 0, 255).astype(np.uint8),
                np.clip(-field, 0, 255).astype(np.uint8),
            )
            if len(self._textures) >= 16:  # identities are drawn one after another
                self._textures.clear()
            self._textures[ident.texture_seed] = tex
        return tex

    def render(self, ident: Identity, var: Variation) -> np.ndarray:
        """One uint8 RGB ``(S, S, 3)`` image of ``ident`` under ``var``."""
        s = self.size
        img = self._ramp(var.background, var.background_grad, np.uint8)
        mask = np.zeros((s, s), dtype=np.uint8)
        self._draw_face(img, mask, ident, var)
        img = self._warp(img, var)
        if var.blur > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), var.blur * self.unit)
        gain = np.asarray(var.cast) * var.gain
        slope = var.light_amp * np.array([np.cos(var.light_dir), np.sin(var.light_dir)])
        img = cv2.multiply(
            img, self._ramp(gain, slope[:, None] * gain, np.float32), dtype=cv2.CV_8U
        )
        if var.occlusion == "hand":
            self._hand(img, var)
        if var.noise > 0:
            field = self._noise[var.noise_index % len(self._noise)]
            oy, ox = var.noise_offset[0] % s, var.noise_offset[1] % s
            img = cv2.addWeighted(
                img, 1.0, field[oy : oy + s, ox : ox + s], var.noise, 0.0, dtype=cv2.CV_8U
            )
        return img

    def _ramp(self, centre, slope, dtype) -> np.ndarray:
        """``(S, S, 3)`` linear ramp: ``centre`` at the middle, ``+slope[0]`` per width in x."""
        centre = np.asarray(centre, np.float64)
        gx, gy = np.asarray(slope, np.float64).reshape(2, -1)
        corners = np.stack(
            [
                [centre - gx / 2 - gy / 2, centre + gx / 2 - gy / 2],
                [centre - gx / 2 + gy / 2, centre + gx / 2 + gy / 2],
            ]
        )
        if dtype == np.uint8:
            corners = np.clip(np.round(corners), 0, 255)
        # bilinear resize of the four corners is the linear ramp (up to half a pixel at the edges)
        return cv2.resize(
            corners.astype(dtype), (self.size, self.size), interpolation=cv2.INTER_LINEAR
        )

    def _warp(self, img: np.ndarray, var: Variation) -> np.ndarray:
        """Rotate, scale and shift about the image centre (border: replicate the background)."""
        s = self.size
        matrix = cv2.getRotationMatrix2D((s / 2, s / 2), var.angle, var.scale)
        matrix[:, 2] += np.array(var.shift) * self.unit
        return cv2.warpAffine(
            img, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def _hand(self, img: np.ndarray, var: Variation) -> None:
        """A skin-toned blob over a random part of the face (drawn after the warp)."""
        bx, by, bw, bh = var.occlusion_box
        centre = (20 + 72 * bx, 40 + 60 * by)
        colour = tuple(np.array(var.occlusion_colour) * 0.4 + 120)
        self._ellipse(img, centre, (10 + 12 * bw, 8 + 10 * bh), 30 * bx, colour)

    def _draw_face(self, face: np.ndarray, mask: np.ndarray, f: Identity, v: Variation) -> None:
        """Draw head, skin texture, hair and features onto ``face`` (``mask``: scratch, S x S)."""
        skin = tuple(f.skin)
        hair = tuple(f.hair)
        cx = 56 + 3 * v.yaw  # head outline turns a little, features more
        fx = 56 + 9 * v.yaw
        dy = 5 * v.pitch
        width = f.face_w * (1 - 0.12 * abs(v.yaw))
        if f.hair_style == "long":
            self._poly(
                face,
                [
                    (cx - width - 5, f.face_y - 10),
                    (cx + width + 5, f.face_y - 10),
                    (cx + width + 7, f.face_y + 20 + f.hair_len),
                    (cx - width - 7, f.face_y + 20 + f.hair_len),
                ],
                hair,
            )
        ear_y = f.eye_y + 8 + dy
        near = (1.0 - 0.6 * max(-v.yaw, 0)) * (1 + 0.5 * max(v.yaw, 0))
        far = (1.0 - 0.6 * max(v.yaw, 0)) * (1 + 0.5 * max(-v.yaw, 0))
        top = f.face_y - f.face_h * 0.35
        for img, colour in ((face, skin), (mask, 255)):
            ear = f.ear_size
            self._ellipse(img, (cx - width, ear_y), (ear * 0.6 * near, ear), 0, colour)
            self._ellipse(img, (cx + width, ear_y), (ear * 0.6 * far, ear), 0, colour)
            self._ellipse(img, (cx, top + dy * 0.3), (width, f.face_h * 0.75), 0, colour)
            jaw = (cx + 2 * v.yaw, f.face_y + dy * 0.5)
            self._ellipse(img, jaw, (width * f.jaw_w, f.face_h), 0, colour)
        light, dark = self.texture(f)
        cv2.add(face, light, dst=face, mask=mask)
        cv2.subtract(face, dark, dst=face, mask=mask)
        self._draw_hair(face, f, cx, width, hair)
        if f.beard:
            self._ellipse(
                face,
                (fx, f.mouth_y + 6 + dy),
                (width * f.jaw_w * 0.9, 13),
                0,
                tuple(np.array(f.hair) * 0.9),
                -1,
                0,
                180,
            )
        self._draw_eyes(face, f, v, fx, dy)
        self._draw_nose(face, f, v, fx, dy)
        self._draw_mouth(face, f, v, fx, dy)
        if f.mole is not None:
            self._ellipse(
                face,
                (fx + f.mole[0] * width, f.face_y + f.mole[1] * f.face_h + dy),
                (1.3, 1.3),
                0,
                (60, 40, 30),
            )
        self._draw_occluder(face, f, v, fx, dy, width)

    def _draw_hair(self, face, f: Identity, cx, width, hair) -> None:
        top = f.face_y - f.face_h
        line = f.face_y - f.face_h * 0.55 + f.hairline
        if f.hair_style == "bald":
            return
        if f.hair_style == "curly":
            for k in range(9):
                a = np.pi * (k / 8.0)
                self._ellipse(
                    face, (cx - np.cos(a) * width * 0.9, line - np.sin(a) * 14), (8, 7), 0, hair
                )
            return
        self._ellipse(face, (cx, line), (width * 1.04, line - top + 3), 0, hair, -1, 180, 360)
        if f.hair_style == "fringe":
            self._poly(
                face,
                [
                    (cx - width * 0.9, line - 2),
                    (cx + width * 0.9, line - 2),
                    (cx + width * 0.6, line + 8),
                    (cx - width * 0.6, line + 8),
                ],
                hair,
            )
        elif f.hair_style == "side":
            self._poly(
                face,
                [(cx - width, line - 3), (cx + 4, line - 3), (cx - width * 0.8, line + 12)],
                hair,
            )
        elif f.hair_style == "long":
            for side in (-1, 1):
                self._poly(
                    face,
                    [
                        (cx + side * width, line - 4),
                        (cx + side * (width + 6), line),
                        (cx + side * (width + 6), line + 30 + f.hair_len),
                        (cx + side * (width - 3), line + 25),
                    ],
                    hair,
                )

    def _draw_eyes(self, face, f: Identity, v: Variation, fx, dy) -> None:
        brow = tuple(np.array(f.hair) * 0.7)
        for side in (-1, 1):
            turn = 1 - 0.35 * max(side * v.yaw, 0)  # the eye turning away looks narrower
            ex, ey = fx + side * f.eye_dx * (1 - 0.15 * abs(v.yaw)), f.eye_y + dy
            tilt = side * f.eye_tilt
            self._ellipse(
                face,
                (ex, ey),
                (f.eye_rx * turn, f.eye_ry * v.blink + 0.3),
                tilt,
                (245, 245, 240),
            )
            if v.blink > 0.35:
                r = min(f.eye_ry * v.blink, f.eye_rx * turn) * 0.95
                self._ellipse(face, (ex + 1.2 * v.yaw, ey), (r, r), 0, tuple(f.iris))
                self._ellipse(face, (ex + 1.2 * v.yaw, ey), (r * 0.45, r * 0.45), 0, (10, 10, 10))
            self._ellipse(
                face,
                (ex, ey),
                (f.eye_rx * turn, f.eye_ry * v.blink + 0.3),
                tilt,
                (40, 30, 25),
                self._t(0.8),
            )
            by = ey - f.brow_gap
            bx = ex + side * 1.0
            dx = f.brow_len * turn
            rise = np.tan(np.radians(side * f.brow_tilt)) * dx
            self._line(face, (bx - dx, by + rise), (bx + dx, by - rise), brow, f.brow_thick)
            if f.glasses:
                colour = tuple(f.glasses_colour)
                rx, ry = f.eye_rx + 3.5, f.eye_ry + 4
                if f.glasses == 1:
                    self._ellipse(face, (ex, ey), (rx * turn, ry), 0, colour, self._t(1.2))
                else:
                    cv2.rectangle(
                        face,
                        self._p(ex - rx * turn, ey - ry),
                        self._p(ex + rx * turn, ey + ry),
                        colour,
                        self._t(1.2),
                        _AA,
                        _SHIFT,
                    )
        if f.glasses:
            self._line(
                face,
                (fx - f.eye_dx + f.eye_rx, f.eye_y + dy - 1),
                (fx + f.eye_dx - f.eye_rx, f.eye_y + dy - 1),
                tuple(f.glasses_colour),
                1.2,
            )

    def _draw_nose(self, face, f: Identity, v: Variation, fx, dy) -> None:
        shadow = tuple(np.array(f.skin) * 0.72)
        tip_x = fx + 4 * v.yaw
        tip_y = f.nose_y + dy * 1.2
        self._line(face, (fx + 1.5 * v.yaw, f.eye_y + 4 + dy), (tip_x, tip_y), shadow, 1.0)
        for side in (-1, 1):
            self._ellipse(
                face,
                (tip_x + side * f.nose_w * 0.5, tip_y + 1),
                (1.8, 1.2),
                0,
                tuple(np.array(f.skin) * 0.5),
            )
        self._ellipse(face, (tip_x, tip_y), (f.nose_w * 0.7, 2.5), 0, shadow, self._t(0.8), 0, 180)

    def _draw_mouth(self, face, f: Identity, v: Variation, fx, dy) -> None:
        mx, my = fx + 3 * v.yaw, f.mouth_y + dy * 1.3
        width = f.mouth_w * (1 - 0.2 * abs(v.yaw)) * (1 + 0.1 * v.smile)
        lip = tuple(f.lip)
        if f.moustache:
            self._ellipse(face, (mx, my - 5), (width * 0.9, 3), 0, tuple(f.hair), -1, 180, 360)
        if v.mouth_open > 0.15:
            self._ellipse(
                face,
                (mx, my + 1),
                (width * 0.8, 1 + 4 * min(v.mouth_open, 1.5)),
                0,
                (50, 15, 20),
            )
        curve = 2.5 * v.smile
        upper = [(mx - width, my), (mx, my - f.lip_thick - 0.5), (mx + width, my)]
        lower = [(mx + width, my), (mx, my + f.lip_thick + 1 + curve), (mx - width, my)]
        top_lip = [(x, y - curve * (1 - abs(x - mx) / width)) for x, y in upper]
        self._poly(face, [*top_lip, (mx, my - 0.2)], lip)
        self._poly(face, [*lower, (mx, my + 0.5)], lip)

    def _draw_occluder(self, face, f: Identity, v: Variation, fx, dy, width) -> None:
        colour = tuple(v.occlusion_colour)
        if v.occlusion == "sunglasses":
            for side in (-1, 1):
                self._ellipse(
                    face,
                    (fx + side * f.eye_dx, f.eye_y + dy),
                    (f.eye_rx + 4, f.eye_ry + 4),
                    0,
                    (20, 20, 25),
                )
        elif v.occlusion == "mask":
            top = f.nose_y - 3 + dy
            self._poly(
                face,
                [
                    (fx - width * 0.9, top),
                    (fx + width * 0.9, top),
                    (fx + width * 0.7, f.face_y + f.face_h * 0.85 + dy),
                    (fx - width * 0.7, f.face_y + f.face_h * 0.85 + dy),
                ],
                colour,
            )
        elif v.occlusion == "hat":
            brim = f.face_y - f.face_h * 0.45 + 6 * v.occlusion_box[0]
            self._poly(
                face,
                [
                    (fx - width - 8, brim),
                    (fx + width + 8, brim),
                    (fx + width, brim - 30),
                    (fx - width, brim - 30),
                ],
                colour,
            )


def _identity(seed: int, index: int) -> Identity:
    return sample_identity(np.random.default_rng([seed, _IDENTITY, index]))


def render_identity_images(
    renderer: FaceRenderer, seed: int, index: int, images: range, difficulty: float
) -> list[np.ndarray]:
    """RGB images number ``images`` of identity ``index`` (the same images for any caller)."""
    ident = _identity(seed, index)
    out = []
    for number in images:
        rng = np.random.default_rng([seed, _TRAIN_IMAGE, index, number, round(difficulty * 1000)])
        out.append(renderer.render(ident, sample_variation(rng, difficulty)))
    return out


_RENDERERS: dict[tuple[int, int], FaceRenderer] = {}


def encode_identity_images(
    seed: int, size: int, index: int, images: range, difficulty: float
) -> list[bytes]:
    """JPEG bytes of :func:`render_identity_images`; quality drops with difficulty."""
    renderer = _RENDERERS.get((size, seed))
    if renderer is None:
        renderer = _RENDERERS.setdefault((size, seed), FaceRenderer(size, seed))
    rng = np.random.default_rng([seed, _TRAIN_IMAGE + 10, index, images.start])
    lowest = max(40, 95 - int(35 * difficulty))
    return [
        encode_image(rgb, ".jpg", quality=int(rng.integers(lowest, 96)))
        for rgb in render_identity_images(renderer, seed, index, images, difficulty)
    ]


def _encode_task(task: tuple) -> list[bytes]:
    return encode_identity_images(*task)


# Below this many images a pool costs more (process start-up, imports) than it saves.
_MIN_IMAGES_FOR_POOL = 4000


def _render_all(tasks: list[tuple], workers: int, desc: str | None) -> Iterator[list[bytes]]:
    """:func:`encode_identity_images` of each task, in order, on up to ``workers`` processes,
    under a progress bar named ``desc`` (None: no bar).

    Workers are spawned, not forked: a fork after OpenCV has started its thread pool deadlocks.
    """
    progress = tqdm(total=len(tasks), desc=desc, unit="id", disable=desc is None)
    images = sum(len(task[3]) for task in tasks)
    if workers <= 1 or images < _MIN_IMAGES_FOR_POOL:
        for task in tasks:
            yield _encode_task(task)
            progress.update()
    else:
        context = mp.get_context("spawn")
        with context.Pool(workers, initializer=worker_init, initargs=(os.getpid(),)) as pool:
            for result in pool.imap(_encode_task, tasks, chunksize=4):
                yield result
                progress.update()
    progress.close()


def _pack_samples(cfg: SynthConfig, images: range, workers: int, desc: str | None):
    """``(label, jpeg)`` for every training identity's images ``images``, label-contiguous."""
    size, diff = cfg.image_size, cfg.difficulty
    tasks = [(cfg.seed, size, label, images, diff) for label in range(cfg.identities)]
    for label, jpegs in enumerate(_render_all(tasks, workers, desc)):
        for jpeg in jpegs:
            yield label, jpeg


def verification_pairs(
    rng: np.random.Generator, identities: int, images_per_identity: int, pairs: int
) -> tuple[list[tuple[tuple[int, int], tuple[int, int]]], list[bool]]:
    """LFW layout: 10 contiguous folds, each half genuine then half impostor pairs.

    Pairs name ``(identity, image)``; genuine pairs are two different images of one identity.
    """
    half = pairs // 20
    out, issame = [], []
    for _ in range(10):
        for _ in range(half):
            ident = int(rng.integers(identities))
            a, b = rng.choice(images_per_identity, 2, replace=False)
            out.append(((ident, int(a)), (ident, int(b))))
            issame.append(True)
        for _ in range(half):
            x, y = rng.choice(identities, 2, replace=False)
            a, b = rng.integers(images_per_identity, size=2)
            out.append(((int(x), int(a)), (int(y), int(b))))
            issame.append(False)
    return out, issame


def write_open_set_bin(
    cfg: SynthConfig,
    path: str,
    difficulty: float,
    stream: int,
    workers: int = 1,
    first_identity: int | None = None,
    progress: bool = True,
) -> None:
    """An open-set bin of ``cfg.val_identities`` held-out identities from ``first_identity``
    (default: the ones right after the training identities), images numbered from
    ``stream * 1000``, pairs drawn from ``(cfg.seed, stream)``."""
    first = cfg.identities if first_identity is None else first_identity
    if first < cfg.identities:
        raise ConfigError(f"synth: open-set identities start at {first}, inside the training set")
    images = range(stream * 1000, stream * 1000 + cfg.val_images_per_identity)
    tasks = [
        (cfg.seed, cfg.image_size, first + j, images, difficulty) for j in range(cfg.val_identities)
    ]
    rendered = list(_render_all(tasks, workers, os.path.basename(path) if progress else None))
    rng = np.random.default_rng([cfg.seed, _PAIRS, stream])
    pairs, issame = verification_pairs(
        rng, cfg.val_identities, cfg.val_images_per_identity, cfg.pairs
    )
    flat = [rendered[ident][img] for pair in pairs for ident, img in pair]
    write_verification_bin(path, flat, issame)


def write_synthetic_dataset(
    out_dir: str, cfg: SynthConfig, workers: int = 1, progress: bool = True
) -> dict:
    """Write train pack, test pack (same identities, other images) and open-set bins to out_dir.

    Files: ``train.rec/.idx``, ``property``, ``test.rec/.idx``, ``synth_val.bin``,
    ``synth_hard.bin`` and ``synth.json`` (the config and counts). Returns that summary.
    ``out_dir`` must not exist: it is written under a temporary name and renamed when complete.
    Output is byte-identical for a config, whatever ``workers`` is. ``progress``: draw bars.
    """
    cfg.check()
    size = (cfg.image_size, cfg.image_size)
    n = cfg.images_per_identity
    with atomic_dir(out_dir) as tmp:
        train = write_face_pack(
            tmp, _pack_samples(cfg, range(n), workers, "train" if progress else None), size
        )
        summary = {"config": asdict(cfg), "train_images": train[0], "classes": train[1]}
        if cfg.test_images_per_identity:
            images = range(n, n + cfg.test_images_per_identity)
            samples = _pack_samples(cfg, images, workers, "test" if progress else None)
            test = write_face_pack(tmp, samples, size, name="test", property_file=False)
            summary["test_images"] = test[0]
        bins = {"synth_val.bin": (cfg.difficulty, 1), "synth_hard.bin": (cfg.hard_difficulty, 2)}
        for name, (difficulty, stream) in bins.items():
            write_open_set_bin(
                cfg, os.path.join(tmp, name), difficulty, stream, workers, progress=progress
            )
        summary["bins"] = {name: cfg.pairs for name in bins}
        write_text(os.path.join(tmp, SUMMARY_FILE), json.dumps(summary, indent=2))
    log.debug("wrote %s: %d train images of %d identities", out_dir, train[0], train[1])
    return summary
