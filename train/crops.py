"""`agegate train --crop box`: the box's own detector and crop over the training images, once.

A store camera never sees an aligned chip: it sees whatever BlazeFace and `crop_face`
make of a frame. Training on those crops (chips and loose photos alike) removes the
gap measured on the landed model (UTKFace test MAE 5.07 on chips, 5.41 through the
detector). Each image is detected once and its crop cached with `CONTEXT` extra
framing, so the till augmentation can jitter the box (scale +-15 %, shift +-10 %)
without running out of pixels; without augmentation the centre 1/CONTEXT of the cached
crop is exactly the box's crop. Images without a face are counted and listed, never
silently dropped.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegate.edge.detect import DETECTION_REVISION, DetectorOptions, FaceDetector, box_crop
from agegate.edge.errors import AgegateError
from agegate.edge.preprocess import ImageDecodeError, PreprocessSpec, decode_image
from agegate.edge.progress import tracked

from .cache import cache_key, load_cache, save_cache
from .datasets import Record

#: Cached crops cover CONTEXT x the box crop's side: room for a 15 % zoom-out plus a 10 % shift
#: (1.15 + 2 x 0.10 = 1.35 would be the worst case together; rare, and edge replication fills it).
CONTEXT = 1.3
#: The options eval --detect uses: faces down to 16 px (small dataset photos), padded retry for chips.
TRAIN_DETECTOR = DetectorOptions.for_photos()


@dataclass
class CropResult:
    images: np.ndarray  # (N, C, C, 3) uint8, C = round(input_size * CONTEXT)
    boxes: np.ndarray  # (N, 5): x0, y0, x1, y1, score of the face in the source image
    index: list[int]  # record index of each row
    no_face: list[str]  # paths where the detector found no face
    unreadable: list[tuple[str, str]]  # (path, reason)


def context_size(spec: PreprocessSpec) -> int:
    return int(round(spec.input_size * CONTEXT))


def crop_records(records: list[Record], spec: PreprocessSpec, desc: str = "crop",
                 cache_dir: Path | None = None, workers: int | None = None) -> CropResult:
    """Detect and crop every record once (a detector per worker thread); cached by content key."""
    settings = repr(spec.to_dict()) + repr(TRAIN_DETECTOR) + f"revision {DETECTION_REVISION}" + f"{CONTEXT}"
    cache = cache_dir / f"crops-{desc}-{spec.input_size}-{cache_key(records, settings)}.npz" if cache_dir else None
    if (z := load_cache(cache)) is not None:
        return CropResult(z["images"], z["boxes"], [int(i) for i in z["index"]], [str(p) for p in z["no_face"]],
                          [tuple(x) for x in z["unreadable"].tolist()])
    size = context_size(spec)
    local = threading.local()

    def one(rec: Record):
        det = getattr(local, "detector", None)
        if det is None:
            det = local.detector = FaceDetector(TRAIN_DETECTOR)
        try:
            img = decode_image(rec.path)
        except ImageDecodeError as e:
            return "unreadable", str(e)
        except Exception as e:  # noqa: BLE001 - one broken file is reported, not fatal
            return "unreadable", f"{rec.path}: {e}"
        found = box_crop(img, det, spec.face_margin, context=CONTEXT, out_size=size, label=rec.face_label)
        if found is None:
            return "no_face", None
        return found.image, (*found.face.corners, found.face.score)

    images = np.empty((len(records), size, size, 3), np.uint8)
    boxes, index, no_face, unreadable = [], [], [], []
    with ThreadPoolExecutor(workers or max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(one, records, chunksize=16)
        for i, (a, b) in enumerate(tracked(results, len(records), f"{desc}: detect+crop", "img")):
            if isinstance(a, str):  # ("no_face", None) or ("unreadable", reason)
                if a == "no_face":
                    no_face.append(str(records[i].path))
                else:
                    unreadable.append((str(records[i].path), b))
                continue
            images[len(index)] = a
            boxes.append(b)
            index.append(i)
    if not index:
        raise AgegateError(f"{desc}: the detector found no face in any of {len(records)} images")
    out = CropResult(images[: len(index)], np.array(boxes, np.float32).reshape(-1, 5), index, no_face, unreadable)
    save_cache(cache, images=out.images, boxes=out.boxes, index=np.array(index, np.int64),
               no_face=np.array(no_face, dtype=str), unreadable=np.array(unreadable, dtype=str).reshape(-1, 2))
    return out
