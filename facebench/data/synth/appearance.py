"""What a synthetic identity looks like and what changes between its images: the draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
