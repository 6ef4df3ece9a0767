"""The one preprocessing function.

Training (tf.data), evaluation, int8 calibration and the checkout box all call
`prepare_uint8` and `normalize` from here, with a `PreprocessSpec` read from the
model's metadata, so a model can never be served differently from how it was
trained. Everything is numpy/OpenCV; `normalize` is plain arithmetic and works on
a numpy array or a TensorFlow tensor alike (training applies it inside tf.data).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import AgegateError

#: name -> (per-channel offset, per-channel scale, channel order); value = (x - offset) * scale
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], str]] = {
    # MobileNetV2/V3 (Keras applications): [-1, 1]
    "mobilenet": ((127.5, 127.5, 127.5), (1 / 127.5, 1 / 127.5, 1 / 127.5), "rgb"),
    # ResNet50 (Keras applications, 'caffe' mode): BGR, ImageNet mean subtracted, no scaling
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "bgr"),
    # EfficientNet (Keras applications): the model rescales internally, feed 0..255
    "raw": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "rgb"),
    "unit": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), "rgb"),
    # PyTorch/torchvision ImageNet models (mobilenet_v2_torch): ImageNet mean and std on 0..1 pixels
    "imagenet": ((123.675, 116.28, 103.53), (1 / 58.395, 1 / 57.12, 1 / 57.375), "rgb"),
    # EfficientNet-Lite (efficientnet_lite0): TensorFlow's reference preprocessing, (x - 127) / 128
    "lite": ((127.0, 127.0, 127.0), (1 / 128, 1 / 128, 1 / 128), "rgb"),
}

FACE_CROPS = ("none", "box")
#: The input sizes a model may take, in pixels (a model's own and its `tta_sizes`).
INPUT_SIZES = (16, 1024)


@dataclass(frozen=True)
class PreprocessSpec:
    """How a face image becomes a model input. Stored in every model's metadata.

    crop: "center" takes the largest centred square (training chips are already
          tight, aligned faces; a detector crop arrives square too).
    face_margin: on the box, a detected face box is grown by this fraction of its
          side on every side before cropping, so the crop frames the face like a
          UTKFace chip does. Measured: BlazeFace's box on a chip pasted into a scene is
          0.916 (median of 150 val chips) of the chip's side, so 0.05 restores the framing.
    face_crop: what a training or evaluation image goes through before `prepare_uint8`.
          "none": the image is used as it is (aligned chips); "box": the box's own face
          detector and `crop_face`, as every camera frame on the box (`train --crop box`).
          eval, calibration and QA read it from the metadata, so they judge what the box sees.
    """

    input_size: int = 128
    crop: str = "center"
    face_margin: float = 0.05
    normalization: str = "mobilenet"
    interpolation: str = "area"
    face_crop: str = "none"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise AgegateError(f"unknown normalization {self.normalization!r}; known: {sorted(NORMALIZATIONS)}")
        if self.crop not in ("center", "stretch"):
            raise AgegateError(f"unknown crop policy {self.crop!r}; known: center, stretch")
        if self.face_crop not in FACE_CROPS:
            raise AgegateError(f"unknown face_crop {self.face_crop!r}; known: {', '.join(FACE_CROPS)}")
        lo, hi = INPUT_SIZES
        if not lo <= int(self.input_size) <= hi:
            raise AgegateError(f"input_size {self.input_size} out of range {lo}..{hi}")

    @property
    def channel_order(self) -> str:
        return NORMALIZATIONS[self.normalization][2]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_order"] = self.channel_order
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        known = {f for f in cls.__dataclass_fields__}  # channel_order is derived
        return cls(**{k: v for k, v in d.items() if k in known})


_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


def prepare_uint8(image_rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Crop and resize one RGB uint8 image to (input_size, input_size, 3) uint8."""
    img = as_rgb_uint8(image_rgb)
    h, w = img.shape[:2]
    if spec.crop == "center" and h != w:
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        img = img[y0 : y0 + s, x0 : x0 + s]
    n = int(spec.input_size)
    if img.shape[0] != n or img.shape[1] != n:
        interp = _INTERP[spec.interpolation] if img.shape[0] > n else cv2.INTER_LINEAR
        img = cv2.resize(img, (n, n), interpolation=interp)
    return np.ascontiguousarray(img)


def normalize(x: Any, spec: PreprocessSpec) -> Any:
    """uint8/float RGB batch or image -> float model input. numpy or tf tensors."""
    offset, scale, order = NORMALIZATIONS[spec.normalization]
    if order == "bgr":
        x = x[..., ::-1]
    if isinstance(x, np.ndarray):
        x = x.astype(np.float32)
    else:  # a tf.Tensor: cast without importing TensorFlow here
        import tensorflow as tf  # noqa: PLC0415 (only reached from the train room)

        x = tf.cast(x, tf.float32)
    return (x - np.asarray(offset, np.float32)) * np.asarray(scale, np.float32)


def preprocess(image_rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The preprocessing contract (the project's design sketch, ../shared/DESIGN.md): RGB uint8 image ->
    float32 model input (H, W, 3)."""
    return normalize(prepare_uint8(image_rgb, spec), spec)


def mirror(x: np.ndarray) -> np.ndarray:
    """Left-right mirror of an (H, W, C) image or an (N, H, W, C) batch: the `tta: mirror` view."""
    return np.ascontiguousarray(x[..., ::-1, :])


def resize_input(x: np.ndarray, size: int) -> np.ndarray:
    """A normalised model input, (H, W, C) or a batch (N, H, W, C), bilinearly resized to `size` x `size`:
    the view of a `tta_sizes` model at another size (metadata.ModelMetadata.with_tta). From the model input
    rather than the face crop, so every caller that holds an input can make it."""
    x = np.asarray(x, np.float32)
    if x.ndim == 4:
        return np.stack([resize_input(one, size) for one in x]) if len(x) else np.zeros((0, size, size, x.shape[-1]), np.float32)
    return np.ascontiguousarray(cv2.resize(x, (int(size), int(size)), interpolation=cv2.INTER_LINEAR))


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Accept grey, RGBA or 16-bit arrays; return 3-channel uint8 (assumed RGB order)."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        raise AgegateError(f"not an image: array of shape {np.asarray(image).shape}")
    return img




class ImageDecodeError(AgegateError):
    pass


def decode_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8. Raises ImageDecodeError with the reason."""
    p = Path(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise ImageDecodeError(f"{p}: cannot read ({e.strerror})") from e
    return decode_bytes(data.tobytes(), str(p))


def decode_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
    if not data:
        raise ImageDecodeError(f"{name}: file is empty")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        raise ImageDecodeError(f"{name}: truncated JPEG (no end-of-image marker)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(f"{name}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
