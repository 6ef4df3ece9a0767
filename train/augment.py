"""Augmentation presets for tf.data: what a till camera does to a face.

Each transform is a small pure function `f(image, seed) -> image` on one float32
(H, W, 3) image in 0..255, with TensorFlow's stateless random ops: the result depends
only on the seed, so a resumed run sees the batches an uninterrupted one would.

Presets (`agegate train --augment`):
  none   nothing
  light  flip, small shift, brightness, contrast (the chip-era preset)
  till   what a store camera adds: the detector's box wanders (scale +-15 %, shift +-10 %),
         the head tilts, the buyer moves (motion blur) or stands off the focus plane
         (defocus), sensor noise in poor light, JPEG from cheap encoders (quality 30-95),
         low light and gamma, colour casts from lamps and white balance, greyscale
         cameras, and faces far from the lens (down- then up-scaling).
"""
from __future__ import annotations

import math
from typing import Callable

AUGMENTS = ("none", "light", "till")


def _tf():
    from .tfenv import import_tf

    return import_tf()[0]


def _u(seed, lo: float, hi: float, shape=()):
    tf = _tf()
    return tf.random.stateless_uniform(shape, seed=seed, minval=lo, maxval=hi)


def jitter_box(context_img, seed, out_size: int, context: float, scale: float = 0.15, shift: float = 0.10):
    """Crop the face box out of a context crop, its side scaled by 1 +- `scale` and its centre
    moved by up to `shift` of its side: how the detector's box wanders from frame to frame."""
    tf = _tf()
    s = _u(seed, 1 - scale, 1 + scale)
    d = _u(tf.stack([seed[0] + 7, seed[1]]), -shift, shift, (2,))
    half = s / context / 2
    cy, cx = 0.5 + d[0] / context, 0.5 + d[1] / context
    box = tf.stack([cy - half, cx - half, cy + half, cx + half])[None]
    return tf.image.crop_and_resize(context_img[None], box, [0], [out_size, out_size])[0]


def centre_box(context_img, out_size: int, context: float):
    """The box's own crop from a context crop: its centre 1/context, resized to the input size."""
    tf = _tf()
    half = 0.5 / context
    box = tf.constant([[0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half]])
    return tf.image.crop_and_resize(context_img[None], box, [0], [out_size, out_size], method="bilinear")[0]


def rotate(img, seed, max_degrees: float = 12.0):
    """Rotate about the centre by up to +-max_degrees (a tilted head), edges reflected."""
    tf = _tf()
    a = _u(seed, -max_degrees, max_degrees) * (math.pi / 180)
    h, w = tf.cast(tf.shape(img)[0], tf.float32), tf.cast(tf.shape(img)[1], tf.float32)
    c, s = tf.cos(a), tf.sin(a)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # output (x, y) samples input (c x - s y + tx, s x + c y + ty): rotation about the centre
    transform = tf.stack([c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, 0.0, 0.0])[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(images=img[None], transforms=transform,
                                                output_shape=tf.shape(img)[:2], fill_value=0.0,
                                                interpolation="BILINEAR", fill_mode="REFLECT")
    return out[0]


def _convolve(img, kernel):
    """Same-size depthwise convolution of an (H, W, 3) image, edges reflected."""
    tf = _tf()
    k = tf.shape(kernel)[0]
    p = k // 2
    x = tf.pad(img, [[p, p], [p, p], [0, 0]], mode="REFLECT")
    kern = tf.tile((kernel / tf.reduce_sum(kernel))[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(x[None], kern, [1, 1, 1, 1], "VALID")[0]


def motion_blur(img, seed, max_length: float = 9.0):
    """A straight smear of 2..max_length pixels at a random angle (the buyer moved)."""
    tf = _tf()
    n = int(max_length) | 1
    length = _u(seed, 2.0, max_length)
    angle = _u(tf.stack([seed[0] + 1, seed[1]]), 0.0, math.pi)
    r = tf.range(n, dtype=tf.float32) - (n - 1) / 2
    yy, xx = tf.meshgrid(r, r, indexing="ij")
    along = xx * tf.cos(angle) + yy * tf.sin(angle)
    across = -xx * tf.sin(angle) + yy * tf.cos(angle)
    kernel = tf.nn.relu(1 - tf.abs(across)) * tf.cast(tf.abs(along) <= length / 2, tf.float32)
    kernel = kernel + tf.cast((tf.abs(xx) + tf.abs(yy)) == 0, tf.float32) * 1e-3  # never all zero
    return _convolve(img, kernel)


def defocus_blur(img, seed, max_radius: float = 2.5):
    """A disk blur of radius 0.5..max_radius pixels (out of the focus plane)."""
    tf = _tf()
    n = 2 * int(math.ceil(max_radius)) + 1
    radius = _u(seed, 0.5, max_radius)
    r = tf.range(n, dtype=tf.float32) - (n - 1) / 2
    yy, xx = tf.meshgrid(r, r, indexing="ij")
    kernel = tf.clip_by_value(radius + 0.5 - tf.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return _convolve(img, kernel)


def sensor_noise(img, seed, max_sigma: float = 12.0):
    """Gaussian noise of standard deviation up to max_sigma grey levels."""
    tf = _tf()
    sigma = _u(seed, 0.0, max_sigma)
    noise = tf.random.stateless_normal(tf.shape(img), seed=tf.stack([seed[0] + 1, seed[1]]))
    return tf.clip_by_value(img + sigma * noise, 0.0, 255.0)


def jpeg(img, seed, lo: int = 30, hi: int = 95):
    """Re-encode as JPEG at a quality drawn from lo..hi (cheap camera encoders)."""
    tf = _tf()
    x = tf.image.stateless_random_jpeg_quality(tf.cast(tf.clip_by_value(img, 0, 255), tf.uint8), lo, hi, seed)
    return tf.cast(x, tf.float32)


def low_light(img, seed, dim: tuple[float, float] = (0.35, 1.1), gamma: tuple[float, float] = (0.7, 1.5)):
    """Exposure times 0.35..1.1 and a gamma of 0.7..1.5: a dim till or a bright window."""
    tf = _tf()
    g = _u(seed, *gamma)
    k = _u(tf.stack([seed[0] + 1, seed[1]]), *dim)
    return tf.clip_by_value(255.0 * tf.pow(img / 255.0, g) * k, 0.0, 255.0)


def colour_cast(img, seed, strength: float = 0.2):
    """Per-channel gains of 1 +- strength: lamp colour and a wrong white balance."""
    tf = _tf()
    gains = _u(seed, 1 - strength, 1 + strength, (3,))
    return tf.clip_by_value(img * gains, 0.0, 255.0)


def greyscale(img, seed=None):
    """A monochrome camera: luma in all three channels."""
    tf = _tf()
    return tf.tile(tf.image.rgb_to_grayscale(img), [1, 1, 3])


def down_up(img, seed, min_fraction: float = 0.25):
    """Down-scale to 25..100 % and back up: a face far from the camera has few pixels."""
    tf = _tf()
    f = _u(seed, min_fraction, 1.0)
    hw = tf.shape(img)[:2]
    small = tf.maximum(tf.cast(tf.cast(hw, tf.float32) * f, tf.int32), 8)
    return tf.image.resize(tf.image.resize(img, small, method="area"), hw, method="bilinear")


def flip(img, seed):
    return _tf().image.stateless_random_flip_left_right(img, seed=seed)


#: The till preset: (transform, probability). Probabilities keep most images recognisably
#: clean (about a third of them get no degradation beyond the box jitter and flip).
TILL: tuple[tuple[Callable, float], ...] = (
    (flip, 1.0), (rotate, 0.5), (motion_blur, 0.15), (defocus_blur, 0.15), (down_up, 0.25),
    (low_light, 0.3), (colour_cast, 0.3), (greyscale, 0.05), (sensor_noise, 0.2), (jpeg, 0.3),
)


def apply_till(img, seed):
    """The till preset on one image; `seed` is a (2,) int64 tensor."""
    tf = _tf()
    for k, (fn, p) in enumerate(TILL):
        s = tf.stack([seed[0] + 101 * (k + 1), seed[1]])
        if p >= 1.0:
            img = fn(img, s)
        else:
            u = _u(tf.stack([s[0] + 53, s[1]]), 0.0, 1.0)
            img = tf.cond(u < p, lambda fn=fn, s=s, x=img: fn(x, s), lambda x=img: x)
    return tf.clip_by_value(img, 0.0, 255.0)
