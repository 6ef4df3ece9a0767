"""What a buyer wears over the face, painted onto a photo: dark sunglasses, tinted glasses, a face mask.

The model learnt from bare faces. `agegate replay --cover` measures what the box decides for a buyer wearing
each (README, "Sunglasses and face masks"): it found the box passing three times the minors behind dark lenses,
hence the box's eye check (`tracking.eye_light`), and twice the minors behind a light tint, which the check does
not see; a mask it does not check for. The covers are drawn, not photographed: shapes placed from BlazeFace's eye
points (opaque, or lenses letting half the light through), so they say how the model copes with the eyes darkened
or gone or the lower face gone, not how it copes with a real mask's folds and shadows or a lens's reflections (on
the data sets' photos with real lenses the check caught fewer than drawn ones: `benchmarks/eye_light_photos.py`).
Pure functions of an RGB image and its face box.
"""
from __future__ import annotations

from enum import Enum

import cv2
import numpy as np

from agegate.edge.detect import FaceBox

#: Near-black lenses (a little blue, as most tints), and a surgical mask's pale blue.
LENS_RGB = (18, 20, 28)
MASK_RGB = (168, 196, 222)
#: The light a tinted lens lets through: half. ISO 12312-1 calls 43-80 % category 1 ("light tint") and 18-43 %
#: category 2, the commonest sunglasses; dark lenses (category 3, 8-18 %) are drawn opaque.
TINT_TRANSMISSION = 0.5


class Cover(str, Enum):
    NONE = "none"
    SUNGLASSES = "sunglasses"
    TINT = "tint"  # the same lenses, letting half the light through: eyes seen, darker
    MASK = "mask"


def _eyes(face: FaceBox) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) eye points; from the box's proportions when the detector gave none."""
    if face.left_eye is not None and face.right_eye is not None:
        return np.array(face.left_eye, float), np.array(face.right_eye, float)
    y = face.y0 + 0.38 * face.height
    return np.array([face.x0 + 0.32 * face.width, y]), np.array([face.x0 + 0.68 * face.width, y])


def sunglasses(rgb: np.ndarray, face: FaceBox) -> np.ndarray:
    """Two opaque dark lenses over the eyes and a bridge between them, turned with the eye line."""
    a, b = _eyes(face)
    d = float(np.linalg.norm(b - a)) or 0.3 * face.width
    angle = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))
    out = rgb.copy()
    axes = (max(2, int(round(0.42 * d))), max(2, int(round(0.30 * d))))
    for eye in (a, b):
        cv2.ellipse(out, (int(round(eye[0])), int(round(eye[1]))), axes, angle, 0, 360, LENS_RGB, -1, cv2.LINE_AA)
    cv2.line(out, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b), LENS_RGB,
             max(1, int(round(0.08 * d))), cv2.LINE_AA)
    return out


def tinted_glasses(rgb: np.ndarray, face: FaceBox, transmission: float = TINT_TRANSMISSION) -> np.ndarray:
    """The lenses of `sunglasses`, letting `transmission` of the light through: the eyes stay visible, darker
    and tinted, which is what a light tint does and what the eye check may not see."""
    if not 0.0 <= transmission <= 1.0:
        raise ValueError(f"transmission must lie in [0, 1], got {transmission}")
    # where the opaque lenses would be, edges anti-aliased: drawn on black, the blue channel over the lens's blue
    lens = sunglasses(np.zeros_like(rgb), face)[..., 2:3].astype(np.float32) / LENS_RGB[2]
    out = rgb.astype(np.float32)
    tinted = transmission * out + (1.0 - transmission) * np.asarray(LENS_RGB, np.float32)
    return (lens * tinted + (1.0 - lens) * out).round().astype(rgb.dtype)


def face_mask(rgb: np.ndarray, face: FaceBox) -> np.ndarray:
    """A mask from the bridge of the nose to under the chin, cheek to cheek."""
    a, b = _eyes(face)
    d = float(np.linalg.norm(b - a)) or 0.3 * face.width
    top = float(max(a[1], b[1])) + 0.32 * d
    bottom = face.y1 + 0.10 * face.height
    left, right = face.x0 + 0.04 * face.width, face.x1 - 0.04 * face.width
    mid = 0.5 * (left + right)
    out = rgb.copy()
    # the upper edge over the nose, the lower a curve under the chin
    lower = [(mid + (right - left) / 2 * np.cos(t), top + (bottom - top) * np.sin(t))
             for t in np.linspace(0, np.pi, 24)]
    pts = np.array([(left, top), (mid, top - 0.12 * d), (right, top)] + lower, np.float32)
    cv2.fillPoly(out, [np.round(pts).astype(np.int32)], MASK_RGB, cv2.LINE_AA)
    return out


def apply_cover(rgb: np.ndarray, face: FaceBox, cover: Cover) -> np.ndarray:
    """`rgb` with `cover` drawn over `face` (a copy; the image itself is left as it is)."""
    cover = Cover(cover)
    if cover is Cover.SUNGLASSES:
        return sunglasses(rgb, face)
    if cover is Cover.TINT:
        return tinted_glasses(rgb, face)
    if cover is Cover.MASK:
        return face_mask(rgb, face)
    return rgb
