"""The face renderer: an identity under a variation as one uint8 RGB image (OpenCV drawing)."""

from __future__ import annotations

import cv2
import numpy as np

from facebench.data.synth.appearance import Identity, Variation

_SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn with 1/16 pixel precision
_FIX = 1 << _SHIFT
_AA = cv2.LINE_AA


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
