"""Input pipeline: decode once with the edge preprocessing, then tf.data from memory.

Images are decoded and cropped/resized to uint8 by `agegate.edge.preprocess.prepare_uint8`
(OpenCV releases the GIL, so a thread pool decodes in parallel), cached as one uint8
array (optionally on disk, keyed by data fingerprint and input size), and fed to
tf.data: seeded shuffle, batch, augmentation with stateless random ops, the shared
`normalize`, prefetch. No Python code runs per image on the hot path.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agegate.edge.contracts import MINOR_AGE
from agegate.edge.errors import AgegateError
from agegate.edge.preprocess import ImageDecodeError, PreprocessSpec, decode_image, prepare_uint8
from agegate.edge.progress import tracked

from .cache import cache_key, load_cache, save_cache
from .datasets import Record, check_boxes_reach_a_detector

log = logging.getLogger("agegate.train")


@dataclass
class DecodedSplit:
    images: np.ndarray  # (N, S, S, 3) uint8; with context > 1, (N, C, C, 3) box crops with extra framing
    ages: np.ndarray  # (N,) float32
    paths: list[str]
    skipped: list[tuple[str, str]]  # (path, reason) for images that could not be decoded
    context: float = 1.0  # > 1: images hold the face box crop with this much framing (train --crop box)
    no_face: list[str] = field(default_factory=list)  # --crop box: images where the detector found no face
    kept: list[int] = field(default_factory=list)  # index into the records of each row

    def subset_weights(self, weights: np.ndarray) -> np.ndarray:
        """Per-record weights -> per-row weights of the kept rows."""
        return np.asarray(weights, np.float32)[self.kept]


def _decode_one(args: tuple[Record, PreprocessSpec]) -> tuple[np.ndarray | None, str]:
    rec, spec = args
    try:
        return prepare_uint8(decode_image(rec.path), spec), ""
    except ImageDecodeError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - a broken file must be reported, not crash the run
        return None, f"{rec.path}: {e}"


def decode_records(records: list[Record], spec: PreprocessSpec, strict: bool = False,
                   desc: str = "decode", cache_dir: Path | None = None, workers: int | None = None) -> DecodedSplit:
    """Decode records to one uint8 array. Unreadable images are skipped with a warning,
    or raise with strict=True. With `spec.face_crop == "box"` every image goes through the
    box's detector and crop first (train/crops.py)."""
    if spec.face_crop == "box":
        return _box_crops(records, spec, strict, desc, cache_dir, workers)
    check_boxes_reach_a_detector(records, False, "train with --crop box")
    key = cache_key(records, repr(spec.to_dict()))
    cache = cache_dir / f"{desc}-{spec.input_size}-{key}.npz" if cache_dir else None
    if (z := load_cache(cache)) is not None:
        return DecodedSplit(z["images"], z["ages"], list(z["paths"]), [], kept=[int(i) for i in z["kept"]])
    n = int(spec.input_size)
    images = np.empty((len(records), n, n, 3), np.uint8)
    keep: list[int] = []
    skipped: list[tuple[str, str]] = []
    workers = workers or max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(_decode_one, ((r, spec) for r in records), chunksize=32)
        for i, (img, err) in enumerate(tracked(it, len(records), desc, "img")):
            if img is None:
                if strict:
                    raise AgegateError(f"unreadable image during training (--strict): {err}")
                skipped.append((str(records[i].path), err))
                continue
            images[len(keep)] = img
            keep.append(i)
    if skipped:
        log.warning("skipped %d unreadable image(s) in %s, first: %s", len(skipped), desc, skipped[0][1])
    out = DecodedSplit(images[: len(keep)], np.array([records[i].age for i in keep], np.float32),
                       [str(records[i].path) for i in keep], skipped, kept=keep)
    save_cache(cache, images=out.images, ages=out.ages, paths=np.array(out.paths), kept=np.array(keep, np.int64))
    return out


def _box_crops(records: list[Record], spec: PreprocessSpec, strict: bool, desc: str, cache_dir: Path | None,
               workers: int | None) -> DecodedSplit:
    from .crops import CONTEXT, crop_records

    res = crop_records(records, spec, desc, cache_dir, workers)
    if strict and (res.unreadable or res.no_face):
        first = res.unreadable[0][1] if res.unreadable else f"{res.no_face[0]}: no face found"
        raise AgegateError(f"{len(res.unreadable)} unreadable image(s), {len(res.no_face)} without a face "
                           f"during training (--strict); first: {first}")
    if res.no_face:
        log.warning("%s: no face found in %d of %d image(s), first: %s (listed in model.json)", desc,
                    len(res.no_face), len(records), res.no_face[0])
    return DecodedSplit(res.images, np.array([records[i].age for i in res.index], np.float32),
                        [str(records[i].path) for i in res.index], list(res.unreadable), context=CONTEXT,
                        no_face=res.no_face, kept=res.index)


def model_inputs(split: DecodedSplit, spec: PreprocessSpec, idx: np.ndarray) -> np.ndarray:
    """Rows `idx` as un-augmented uint8-range model inputs (box crops: their centre, as `make_dataset`)."""
    images = split.images[idx]
    if split.context <= 1:
        return images
    from .augment import centre_box

    return np.stack([centre_box(x.astype(np.float32), int(spec.input_size), split.context).numpy() for x in images])


def _view_fn(split: DecodedSplit, spec: PreprocessSpec, *, training: bool, augment: str, seed: int, epoch: int):
    """The function that turns row `idx`'s stored image into what the model sees in this epoch, on the 0-255
    scale before normalising: the box's crop (jittered with `till`) and the augmentation. It depends only on
    (seed, epoch, idx), so the same view comes out whatever the order (shuffled batches, teacher targets)."""
    from . import augment as aug
    from .tfenv import import_tf

    tf, _ = import_tf()
    size = int(spec.input_size)
    context = float(split.context)

    def view(img, idx):
        x = tf.cast(img, tf.float32)
        s = tf.stack([tf.cast(seed * 1000 + epoch, tf.int64), idx])
        if context > 1:  # box crops with framing: jitter the box when training with `till`, else the box's crop
            x = (aug.jitter_box(x, s, size, context) if training and augment == "till"
                 else aug.centre_box(x, size, context))
        if training and augment == "till":
            x = aug.apply_till(x, tf.stack([s[0] + 17, s[1]]))
        if training and augment == "light":
            s2 = tf.stack([s[0] + 1, s[1]])
            x = tf.image.stateless_random_flip_left_right(x, seed=s)
            pad = max(2, size // 12)
            x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            x = tf.image.stateless_random_crop(x, (size, size, 3), seed=s2)
            x = tf.image.stateless_random_brightness(x, 0.12 * 255, seed=tf.stack([s[0] + 2, s[1]]))
            x = tf.image.stateless_random_contrast(x, 0.85, 1.15, seed=tf.stack([s[0] + 3, s[1]]))
            x = tf.clip_by_value(x, 0.0, 255.0)
        return x

    return view


def training_views(split: DecodedSplit, spec: PreprocessSpec, *, augment: str, seed: int, epoch: int,
                   batch_size: int = 256):
    """Batches of (views, rows) in row order: what `make_dataset(training=True)` shows the model of each
    training row in `epoch`, on the 0-255 scale (float32), for teachers that label the augmented view
    (train/distill.py, `--teacher-view augmented`)."""
    from .tfenv import import_tf

    tf, _ = import_tf()
    view = _view_fn(split, spec, training=True, augment=augment, seed=seed, epoch=epoch)
    n = len(split.ages)
    ds = tf.data.Dataset.from_tensor_slices((split.images, np.arange(n, dtype=np.int64)))
    ds = ds.map(lambda img, idx: (view(img, idx), idx), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_dataset(split: DecodedSplit, spec: PreprocessSpec, batch_size: int, *, training: bool,
                 augment: str = "none", seed: int = 0, epoch: int = 0, minor_weight: float = 1.0,
                 weights: np.ndarray | None = None, teacher_probs: np.ndarray | None = None):
    """tf.data for one epoch. The shuffle order and augmentation depend only on (seed, epoch),
    so a resumed run sees exactly the batches an uninterrupted one would.

    `weights` (one per row) become Keras sample weights (source weights, the balanced age prior);
    minors' rows are multiplied by `minor_weight`. `teacher_probs` (one distribution per row, training
    only): the label becomes (age, the teachers' distribution...), which the distribution loss splits.
    """
    from agegate.edge.preprocess import normalize

    from .tfenv import import_tf

    tf, _ = import_tf()
    n = len(split.ages)
    w = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
    soft = teacher_probs is not None and training
    extra = (np.asarray(teacher_probs, np.float32),) if soft else ()
    ds = tf.data.Dataset.from_tensor_slices((split.images, split.ages, np.arange(n, dtype=np.int64), w, *extra))
    if training:
        ds = ds.shuffle(n, seed=seed * 1000 + epoch, reshuffle_each_iteration=False)
    weighted = training and (weights is not None or minor_weight != 1.0)
    view = _view_fn(split, spec, training=training, augment=augment, seed=seed, epoch=epoch)

    def _map(img, age, idx, wt, *teacher):
        x = view(img, idx)
        label = tf.concat([age[None], teacher[0]], axis=0) if teacher else age
        if weighted:  # (x, y, sample weight): sources, age prior, and minors count as asked in the loss
            return normalize(x, spec), label, wt * tf.where(age < MINOR_AGE, minor_weight, 1.0)
        return normalize(x, spec), label

    ds = ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
