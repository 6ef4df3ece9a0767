"""Distillation: a student learns the teachers' age distributions as well as the labels.

Why: two models that err differently are better together than either alone. Measured on val through the
box's detector (`benchmarks/ensemble_probe.py`, MODEL_HISTORY.md "Distilling two models into one"): the mean of v2's
and the v3 candidate's estimates had MAE 5.21 against 5.50 and 5.36 alone, and asked 17.3 % of 25+ for ID
at 1 % of minors passed, against 20.0 % and 23.7 %. The box has the time for one model per face, so
`agegate train --teacher A --teacher B` runs each teacher once over the training images the way the box
sees them (its detector and crop with `--crop box`, the image as it is otherwise), averages their
distributions, and the loss mixes that average into each image's label distribution (`--distill-weight`;
train/losses.py).

Measured so far: the v3 run fine-tuned with v2 and v3 as teachers lost val MAE every epoch (5.54, 5.57,
5.73), and so did the same fine-tune without teachers (5.55, 5.61, 5.75; MODEL_HISTORY.md): the teachers helped a
little, the re-raised learning rate hurt. Teachers that trained on the images they label pass on what they
memorised (v2 + v3 on their training images: MAE 4.28, on val 5.21), so cross-fitted teachers (one per fold
of the training set) are the better source.

The targets are computed once and kept in the run folder (`teacher-targets.npz`, keyed by the teachers'
SHA-256 and the training rows), so `--resume` does not run the teachers again.

`--teacher-view augmented` labels instead what the student sees: each epoch, the teachers run on that epoch's
augmented view of every training row (the jittered crop, the till camera's blur, noise and light:
train/inputs.py `training_views`) and the student learns their distribution of that very view
(`teacher-targets-epochNNN.npz`). Why: with one label per image, teachers that trained on the images
mostly repeat the labels (v2.3 and the 128 px run: MAE 4.39 on the training images, 5.24 on val), and a
student fine-tuned toward them kept v2.3's errors (MODEL_HISTORY.md, "v2.3 fine-tuned toward the pair's
mean"). On a view they never saw, teachers disagree with the label as they do on new faces, which is what
the pair's mean is better at ("function matching", Beyer et al. 2022, "Knowledge distillation: a good teacher
is patient and consistent"). It costs each teacher one pass over the training set per epoch. Measured once:
on the views the teachers' mean had MAE 4.83-4.92 against the labels (less memorised, not unseen), and a
3-epoch fine-tune of v2.3 with it did no better than with image targets (MODEL_HISTORY.md, "The same on the
augmented view").
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegate.edge.age_head import AgeHead
from agegate.edge.errors import UsageError

log = logging.getLogger("agegate.train")
TARGETS_FILE = "teacher-targets.npz"
TEACHER_VIEWS = ("image", "augmented")  # what a teacher labels: each image once, or each epoch's augmented view


@dataclass(frozen=True)
class TeacherTargets:
    """One mean teacher distribution per training row (zeros where no teacher found the face: label only)."""

    probs: np.ndarray  # (N, bins) float32; a row of zeros: no teacher distribution
    teachers: tuple[dict, ...]  # {"path", "sha256"} per teacher
    train_mae: float | None  # of the mean distribution's expectation on these rows: far below the teachers'
    #                          val MAE, they trained on these images and pass on what they memorised

    @property
    def missing(self) -> int:
        """Rows without a teacher distribution (they train on their label alone)."""
        return int((self.probs.sum(axis=1) == 0).sum())

    def summary(self, weight: float, view: str = "image") -> dict:
        d = {"teachers": list(self.teachers), "weight": weight, "rows": int(len(self.probs)),
             "rows_without_teacher": self.missing, "teachers_train_mae": self.train_mae}
        return d if view == "image" else {**d, "view": view}


def _teacher_file(path: str) -> Path:
    """The file whose bytes identify a teacher: a .tflite, or a run folder's model.keras."""
    p = Path(path)
    return p / "model.keras" if p.is_dir() else p


def check_teachers(teachers: list[str], head: AgeHead, view_spec=None) -> None:
    """Every teacher must exist and give a distribution over the student's ages: fail before any work.
    `view_spec` (the student's PreprocessSpec, with `--teacher-view augmented`): teachers then read the
    student's crops, so they must frame a face as the student does (the same crop policy and margin)."""
    from agegate.edge.metadata import read_metadata

    for t in teachers:
        f = _teacher_file(t)
        if not f.exists():
            raise UsageError(f"--teacher {t}: no such model (a .tflite, or a run folder with model.keras)")
        meta = read_metadata(f)
        if not meta.head.is_distribution:
            raise UsageError(f"--teacher {t}: has a {meta.head.kind.value} head; distillation needs teachers with "
                             f"a distribution head (train them with --head distribution)")
        if (meta.head.min_age, meta.head.n_bins) != (head.min_age, head.n_bins):
            raise UsageError(f"--teacher {t}: its distribution covers ages {meta.head.min_age}-"
                             f"{meta.head.min_age + meta.head.n_bins - 1}, the student's "
                             f"{head.min_age}-{head.min_age + head.n_bins - 1}")
        own = meta.preprocess
        if view_spec is not None and (own.face_crop, own.face_margin) != (view_spec.face_crop, view_spec.face_margin):
            raise UsageError(f"--teacher {t}: it reads faces with crop {own.face_crop} and margin {own.face_margin:g}, "
                             f"the student {view_spec.face_crop} and {view_spec.face_margin:g}; with --teacher-view "
                             f"augmented a teacher labels the student's own crops, so both must frame faces alike "
                             f"(or use --teacher-view image)")


def teacher_targets(teachers: list[str], records: list, head: AgeHead, detect: bool, out: Path,
                    threads: int = 2) -> TeacherTargets:
    """The mean of the teachers' distributions (each at its own calibrated temperature, as the box reads
    it) for each of `records` (the training rows, in order), cached in `out`. The teachers are checked
    first with `check_teachers` (the loop does it before decoding, so a wrong teacher fails at once)."""
    from agegate.convert.evaluate import predict

    ids = _teacher_ids(teachers)
    key = hashlib.sha256(("\n".join(i["sha256"] for i in ids) + f"\n{detect}\n" +
                          "\n".join(f"{r.path}\t{r.age:g}" for r in records)).encode()).hexdigest()[:20]

    def compute() -> np.ndarray:
        row = {str(r.path): i for i, r in enumerate(records)}
        total = np.zeros((len(records), head.n_bins), np.float64)
        seen = np.zeros(len(records), np.int32)
        for n, t in enumerate(teachers, 1):
            p = predict(t, records, threads=threads, detect=detect, desc=f"teacher {n}/{len(teachers)}")
            idx = np.array([row[q] for q in p.paths], np.int64)
            total[idx] += p.probs
            seen[idx] += 1
        # A row counts only where every teacher saw the face: a mean of one teacher is not the ensemble.
        full = seen == len(teachers)
        if not full.all():
            log.warning("%d of %d training images have no teacher distribution (no face found by a teacher's "
                        "detector): they train on their label alone", int((~full).sum()), len(records))
        return np.where(full[:, None], total / len(teachers), 0.0)

    ages = np.array([r.age for r in records], np.float64)
    return _cached(out / TARGETS_FILE, key, compute, ids, ages, head)


def _teacher_ids(teachers: list[str]) -> tuple[dict, ...]:
    from agegate.edge.metadata import sha256_file

    return tuple({"path": str(t), "sha256": sha256_file(_teacher_file(t))} for t in teachers)


def _cached(cache: Path, key: str, compute, ids: tuple[dict, ...], ages: np.ndarray, head: AgeHead) -> TeacherTargets:
    """The targets `cache` holds for `key`, or `compute()`'s, stored there first. Stored as float16 and the run
    trains on the stored values, so a resumed run sees the same targets as an uninterrupted one."""
    from .cache import load_cache, save_cache

    probs = None
    z = load_cache(cache)
    if z is not None and "key" in z and str(z["key"]) == key:
        probs = z["probs"].astype(np.float32)
    if probs is None:
        stored = np.asarray(compute()).astype(np.float16)
        save_cache(cache, probs=stored, key=np.array(key))
        probs = stored.astype(np.float32)
    return TeacherTargets(probs, ids, _train_mae(probs, ages, head))


def _train_mae(probs: np.ndarray, ages: np.ndarray, head: AgeHead) -> float | None:
    p = np.asarray(probs, np.float64)
    total = p.sum(axis=1)
    seen = total > 0
    if not seen.any():
        return None
    estimate = (p[seen] @ head.ages) / total[seen]
    return round(float(np.mean(np.abs(estimate - ages[seen]))), 3)


def epoch_targets_file(epoch: int) -> str:
    return f"teacher-targets-epoch{epoch + 1:03d}.npz"


def augmented_teacher_targets(teachers: list[str], split, spec, head: AgeHead, *, augment: str, seed: int,
                              epoch: int, out: Path, threads: int = 2, progress: bool = True) -> TeacherTargets:
    """The mean of the teachers' distributions (each at its calibrated temperature, through its own resize,
    normalisation and test-time augmentation, as the box reads a face) of each training row's view in `epoch`
    (train/inputs.py `training_views`: the same crop, jitter and till augmentation the student is shown),
    cached in `out` per epoch so `--resume` does not run the teachers again. Box crops are the detector's
    already, so no teacher detects again and every row has a target."""
    from agegate.convert.predictor import open_predictor
    from agegate.edge.preprocess import normalize, prepare_uint8
    from agegate.edge.progress import progress as progress_of

    from .inputs import training_views

    ids = _teacher_ids(teachers)
    key = hashlib.sha256(("\n".join(i["sha256"] for i in ids) + f"\nview augmented {augment} {seed} {epoch} "
                          f"{int(spec.input_size)}\n" + "\n".join(split.paths)).encode()).hexdigest()[:20]

    def compute() -> np.ndarray:
        models = [open_predictor(t, threads) for t in teachers]
        total = np.zeros((len(split.ages), head.n_bins), np.float64)
        bar = progress_of(len(split.ages) * len(models), f"teachers, epoch {epoch + 1}", "img", show=progress)
        for views, rows in training_views(split, spec, augment=augment, seed=seed, epoch=epoch):
            faces = np.clip(np.rint(views.numpy()), 0, 255).astype(np.uint8)  # the box reads uint8 frames
            rows = rows.numpy()
            for m in models:
                own = m.meta.preprocess
                xs = np.stack([normalize(prepare_uint8(f, own), own) for f in faces])
                total[rows] += m.meta.head.probabilities(m.raw(xs))
                bar.update(len(rows))
        bar.close()
        return total / len(models)

    return _cached(out / epoch_targets_file(epoch), key, compute, ids, np.asarray(split.ages, np.float64), head)
