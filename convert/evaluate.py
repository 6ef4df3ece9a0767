"""`agegate eval`: predictions for a data split from a Keras run or a .tflite, then metrics.

Decoding and preprocessing are the box's own (agegate.edge.preprocess); with
`detect=True` every image first goes through the box's face detector and crop,
which is what an un-cropped photo meets at the checkout.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agegate.edge.age_head import AgeHead, p_under
from agegate.edge.challenge25 import OperatingPoint, rates, tradeoff_curve
from agegate.edge.contracts import CHALLENGE_AGE
from agegate.edge.detect import DetectorOptions, FaceBox, FaceDetector, box_crop
from agegate.edge.errors import AgegateError, UsageError
from agegate.edge.metadata import ModelMetadata, TtaViews, read_metadata
from agegate.edge.preprocess import PreprocessSpec, decode_image, normalize, prepare_uint8
from agegate.edge.progress import progress as progress_of

from .metrics import age_metrics, calibration, group_mae

log = logging.getLogger("agegate.convert")


@dataclass
class Predictions:
    paths: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    attrs: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable or no face (with --detect)
    probs: np.ndarray | None = None  # (N, bins) age distributions of a distribution model
    head: AgeHead = field(default_factory=AgeHead)
    operating_point: OperatingPoint | None = None  # the model's, to report what it does on this data
    # Per image, one entry each (filled with None when not given, e.g. by tests):
    lines: list[int | None] = field(default_factory=list)  # its line in its label file: a group photo's faces
    # The face the detector took (its corners, and key points: how far it was turned); None: read whole.
    faces: list[FaceBox | None] = field(default_factory=list)
    peers: list[int | None] = field(default_factory=list)  # other faces as large (FaceCrop.peers); None: not detected

    def __post_init__(self) -> None:
        n = len(self.paths)
        self.lines, self.faces, self.peers = (xs or [None] * n for xs in (self.lines, self.faces, self.peers))

    @property
    def risk(self) -> np.ndarray | None:
        """P(under 25) per image (distribution models)."""
        return None if self.probs is None else p_under(self.probs, self.head, CHALLENGE_AGE)

    @property
    def keys(self) -> list[tuple[str, int | None]]:
        """One key per image: its file and label line (a group photo has a row per face, one file)."""
        return list(zip(self.paths, self.lines))

    def pair(self, other: "Predictions") -> tuple[list[int], list[int]]:
        """Indices (here, in `other`) of the images both hold, in this order: a float and a quantized model
        compared image by image; an image one of them skipped (no face) is dropped from both."""
        at = {k: j for j, k in enumerate(other.keys)}
        mine = [i for i, k in enumerate(self.keys) if k in at]
        return mine, [at[self.keys[i]] for i in mine]

    def without(self, keys: set[tuple[str, int | None]]) -> "Predictions":
        """These predictions less the images with these `keys` (file, label line: e.g. labels a person found
        wrong; a group photo's other faces stay)."""
        keep = np.array([k not in keys for k in self.keys], bool)
        pick = lambda xs: [x for x, k in zip(xs, keep) if k]  # noqa: E731
        return dataclasses.replace(self, paths=pick(self.paths), y_true=self.y_true[keep], y_pred=self.y_pred[keep],
                                   attrs=pick(self.attrs) if self.attrs else self.attrs,
                                   lines=pick(self.lines), faces=pick(self.faces), peers=pick(self.peers),
                                   probs=None if self.probs is None else self.probs[keep])

    def metrics(self) -> dict:
        m = age_metrics(self.y_true, self.y_pred)
        if self.probs is not None:
            m["calibration"] = calibration(self.y_true, self.probs, self.head)
            risk = self.risk
            m["risk_curve"] = tradeoff_curve(risk, self.y_true)
            if self.operating_point is not None:
                m["operating_point"] = {"max_risk": self.operating_point.max_risk,
                                        **rates(risk, self.y_true, self.operating_point.max_risk)}
        m["skipped"] = len(self.skipped)
        m["skipped_files"] = [{"path": p, "reason": why} for p, why in self.skipped]
        if any(n is not None for n in self.peers):  # the largest face taken beside another as large: someone else's?
            m["several_faces"] = sum(bool(n) for n in self.peers)
        keys = sorted({k for a in self.attrs for k in a})
        if keys:  # e.g. UTKFace gender and race: the fairness figures of a model card
            m["groups"] = {k: group_mae(self.y_true, self.y_pred, [a.get(k, "unknown") for a in self.attrs])
                           for k in keys}
        return m

    def write_csv(self, path: Path) -> None:
        """One row per image; a skipped image has an empty prediction and says why. `line` is the image's
        row in its label file (empty for labels in file names): it tells a group photo's faces apart.
        `face_x,face_y,face_w,face_h` is the face the detector took, in the label CSV's own columns: a wrong
        face can be checked on the image, and the box pasted into the labels to mark the right one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "line", "age", "predicted", "error", "face_x", "face_y", "face_w", "face_h",
                        "other_faces", "skipped"])
            for p, n, t, y, box, others in zip(self.paths, self.lines, self.y_true, self.y_pred, self.faces, self.peers):
                xywh = [""] * 4 if box is None else [f"{v:.0f}" for v in (box.x0, box.y0, box.width, box.height)]
                w.writerow([p, "" if n is None else n, f"{t:g}", f"{y:.3f}", f"{y - t:.3f}", *xywh,
                            "" if others is None else others, ""])
            for p, why in self.skipped:
                w.writerow([p, "", "", "", "", "", "", "", "", "", why])

    @classmethod
    def concat(cls, parts: list["Predictions"]) -> "Predictions":
        probs = None if any(x.probs is None for x in parts) else np.concatenate([x.probs for x in parts])
        every = lambda name: [v for x in parts for v in getattr(x, name)]  # noqa: E731
        return cls(every("paths"), np.concatenate([x.y_true for x in parts]),
                   np.concatenate([x.y_pred for x in parts]), every("attrs"), every("skipped"), probs, parts[0].head,
                   parts[0].operating_point, every("lines"), every("faces"), every("peers"))


def is_tflite(path: str | Path) -> bool:
    return Path(path).suffix == ".tflite"


def model_metadata(path: str | Path) -> ModelMetadata:
    """The metadata of a .tflite, a run folder or a model.keras (read_metadata finds the sidecar)."""
    return read_metadata(Path(path))


@dataclass(frozen=True)
class ModelInput:
    """One record as the model sees it: the normalised input, or why there is none; and the face the
    detector took (None when the image is read whole), so a person can check which face an error is on."""

    x: np.ndarray | None
    error: str = ""
    face: FaceBox | None = None
    peers: int | None = None  # other faces as large as the one taken (FaceCrop.peers); None: read whole


class ModelInputs:
    """Turns records into normalised model inputs, through the box's detector and crop when asked
    (`detect`) or when the model was trained on box crops (`face_crop: box` in its metadata)."""

    def __init__(self, spec: PreprocessSpec, detect: bool = False, detector: str = "blazeface-short"):
        self.spec = spec
        self.options = DetectorOptions.for_photos(detector=detector) if detect or spec.face_crop == "box" else None
        self._local = threading.local()  # a detector per thread: a LiteRT interpreter is not thread-safe

    @property
    def detects(self) -> bool:
        return self.options is not None

    @property
    def detector(self) -> FaceDetector | None:
        """This thread's detector (made on first use); None when images are read whole."""
        if self.options is None:
            return None
        if getattr(self._local, "detector", None) is None:
            self._local.detector = FaceDetector(self.options)
        return self._local.detector

    def __call__(self, rec) -> ModelInput:
        try:
            img = decode_image(rec.path)
        except AgegateError as e:
            return ModelInput(None, str(e))
        if self.detects:
            label = rec.face_label
            found = box_crop(img, self.detector, self.spec.face_margin, label=label)
            if found is None:
                return ModelInput(None, f"{rec.path}: no face found" + ("" if label is None else
                                                                       f" at the labelled face box (line {rec.line})"))
            return ModelInput(normalize(prepare_uint8(found.image, self.spec), self.spec), "", found.face, found.peers)
        return ModelInput(normalize(prepare_uint8(img, self.spec), self.spec))


def predict(model_path: str | Path, records, *, threads: int = 2, batch_size: int = 64, detect: bool = False,
            detector: str = "blazeface-short", progress: bool = True, desc: str = "eval",
            views: TtaViews | None = None, head: AgeHead | None = None) -> Predictions:
    """`head`: read the raw outputs with this head instead of the model's own (QA reads a float parent
    with its calibrated child's temperature)."""
    from .predictor import open_predictor

    model = open_predictor(model_path, threads, views)
    head = head or model.meta.head
    inputs = ModelInputs(model.meta.preprocess, detect, detector)
    from agegate.train.datasets import check_boxes_reach_a_detector

    check_boxes_reach_a_detector(records, inputs.detects, f"{Path(model_path).name} reads whole images; run "
                                 "`agegate eval` with --detect, or use a model trained with --crop box")
    paths, lines, faces, peers, y_true, raws, attrs, skipped = [], [], [], [], [], [], [], []
    workers = max(2, os.cpu_count() or 2)
    bar = progress_of(len(records), desc, "img", show=progress)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            xs, kept = [], []
            for rec, got in zip(chunk, pool.map(inputs, chunk)):
                if got.x is None:
                    skipped.append((str(rec.path), got.error))
                else:
                    xs.append(got.x)
                    kept.append((rec, got))
            if xs:
                raws.append(model.raw(np.stack(xs)))
                for rec, got in kept:
                    paths.append(str(rec.path))
                    lines.append(rec.line)
                    faces.append(got.face)
                    peers.append(got.peers)
                    y_true.append(rec.age)
                    attrs.append(dict(rec.attrs))
            bar.update(len(chunk))
    bar.close()
    if not paths:
        raise AgegateError(f"no image could be evaluated ({len(skipped)} skipped; first: "
                           f"{skipped[0][1] if skipped else 'none'})")
    raw = np.concatenate(raws)
    probs = head.probabilities(raw) if head.is_distribution else None
    return Predictions(paths, np.array(y_true), head.point(raw), attrs, skipped, probs, head,
                       model.meta.operating_point, lines, faces, peers)


def select_records(data: str, fmt: str, split_file: str | None, split: str | None, limit: int | None = None,
                   seed: int = 0, whole_if_unsplit: bool = False):
    """The records of one split. A data set without any split is taken whole when
    `whole_if_unsplit` (eval, calibration: callers say so), else it is an error."""
    from agegate.train.datasets import read_dataset

    ds = read_dataset(data, fmt, split_file)
    unsplit = not any(r.split for r in ds.records)
    whole = split in (None, "all") or (unsplit and whole_if_unsplit)
    recs = ds.records if whole else ds.split(split)
    unread = ds.unread_rows()
    if not recs:
        have = sorted({str(r.split) for r in ds.records})
        found = f"splits here: {', '.join(have)}" if have else "no row read"
        raise UsageError(f"{data}: no images in split {split!r} ({found}){f'; {unread}' if unread else ''}")
    if unread:  # a figure measured without them: say which, so none is left out unseen
        log.warning("%s: %s", data, unread)
    if limit and limit < len(recs):
        rng = np.random.default_rng(seed)
        recs = [recs[i] for i in sorted(rng.permutation(len(recs))[:limit])]
    return recs


@dataclass(frozen=True)
class DataSplit:
    """One data set's records of one split: read once, shared by every model and step that uses them
    (qa evaluates two models on it; calibrate also replays it through the box)."""

    name: str
    path: str
    split: str  # the split, or "all (the set has no split)"
    records: list


def read_splits(datas: list[str], fmt: str, split_file: str | None, split: str,
                limit: int | None = None) -> list[DataSplit]:
    """Each data set's records of `split`; a set that has no split is taken whole (and says so)."""
    from agegate.train.datasets import check_distinct

    check_distinct(datas)
    out = []
    for data in datas:
        recs = select_records(data, fmt, split_file, split, limit, whole_if_unsplit=True)
        used = split if any(r.split == split for r in recs) or split == "all" else "all (the set has no split)"
        out.append(DataSplit(set_name(data), str(data), used, recs))
    return out


def splits_label(splits: list[DataSplit]) -> str:
    """The data a figure stands on, as calibrate records its point's and replay says its buyers': `utkface, aaf
    [val]`, or each set with the split it gave when they differ (a set without splits is taken whole: `store [all
    (the set has no split)]`, not the split asked for)."""
    if len({s.split for s in splits}) == 1:
        return f"{', '.join(s.name for s in splits)} [{splits[0].split}]"
    return ", ".join(f"{s.name} [{s.split}]" for s in splits)


@dataclass
class SetResult:
    """One data set's predictions in a cross-dataset evaluation."""

    name: str
    path: str
    split: str  # the split evaluated, or "all (the set has no split)"
    predictions: Predictions

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "split": self.split, **self.predictions.metrics()}


def evaluate_sets(model_path: str | Path, splits: list[DataSplit], **predict_kw) -> list[SetResult]:
    """One model's predictions on each data set's split (`read_splits`)."""
    return [SetResult(s.name, s.path, s.split, predict(model_path, s.records, desc=s.name, **predict_kw))
            for s in splits]


def set_name(data: str) -> str:
    p = Path(data)
    return (p.parent.name if p.is_file() else p.name) or str(p)
