"""The training loop behind `agegate train`.

One epoch at a time: the learning rate, the shuffle order, augmentation and the
global RNG all derive from (seed, epoch), and every epoch ends with an atomic
checkpoint (model + optimizer + state.json), so `--resume` after an interruption
finishes with the same result as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.errors import DatasetError, UsageError
from agegate.edge.preprocess import PreprocessSpec
from agegate.edge.progress import LOG_EVERY_S, LogLines

from .backbones import build_model, check_weights, get_backbone
from .checkpoints import STATE_FILE, atomic_save, check_new_run_folder, kept, load_state, new_state, save_epoch
from .config import TrainConfig
from .distill import TeacherTargets, augmented_teacher_targets, check_teachers, teacher_targets
from .inputs import decode_records, make_dataset
from .label_errors import match_exclusions, read_label_exclusions
from .losses import compile_objects, custom_objects
from .run_export import export_metadata, write_history
from .sources import load_sources, record_weights

log = logging.getLogger("agegate.train")


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Cosine decay within each phase (frozen head training, then full fine-tuning)."""
    if epoch < cfg.freeze_epochs:
        start, length = 0, cfg.freeze_epochs
    else:
        start, length = cfg.freeze_epochs, cfg.epochs - cfg.freeze_epochs
    t = (epoch - start) / max(1, length)
    return float(cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))))


def _strategy(tf, name: str):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UsageError("--distribute multiworker needs TF_CONFIG set on every worker (see README, multi-host recipe)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief() -> bool:
    cfg = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = cfg.get("task", {})
    return task.get("type", "chief") == "chief" or (task.get("type") == "worker" and task.get("index", 0) == 0
                                                      and "chief" not in cfg.get("cluster", {}))


def _set_phase(model, n_backbone: int, frozen: bool) -> None:
    for layer in model.layers[1 : n_backbone]:  # layer 0 is the Input
        layer.trainable = not frozen


def _compile(model, keras, cfg: TrainConfig) -> None:
    loss, mae = compile_objects(keras, cfg.age_head(), cfg.loss, cfg.minor_overshoot_weight,
                                cfg.distill_weight if cfg.teacher else 0.0, cfg.c25_weight)
    model.compile(optimizer=keras.optimizers.Adam(lr_at(cfg, 0)), loss=loss, metrics=[mae])


@dataclass
class TrainResult:
    out: Path
    best_val_mae: float
    best_epoch: int
    epochs_run: int
    model: object  # the in-memory model after the last epoch (tf_keras.Model)


@dataclass
class TrainingData:
    """What a run trains and validates on, decoded once (box crops cached)."""

    spec: PreprocessSpec
    sources: list
    train: object  # inputs.DecodedSplit
    val: object
    sample_weights: np.ndarray | None
    teachers: TeacherTargets | None = None  # --teacher: the mean teacher distribution per training row
    excluded: list = field(default_factory=list)  # --exclude: label_errors.LabelExclusion, left out of train


#: What --resume may change: how long the run goes on, and where its caches live.
RESUMABLE = ("epochs", "cache_dir", "out")


def _resolve_config(cfg: TrainConfig, out: Path, resume: bool, echo, given: set[str] | None = None) -> TrainConfig:
    """The run's config: the saved one when resuming (epochs may grow), else the given one; checked. `given`:
    the options named on the command line; resuming, one that differs from the run's refuses (it would be
    ignored, and the run would not be what the command line says)."""
    state_path = out / "checkpoints" / STATE_FILE
    if resume:
        if not state_path.exists():
            raise UsageError(f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume")
        saved = TrainConfig.load(out / "config.json")
        differ = [k for k in sorted(given or ())
                  if k not in RESUMABLE and not _same(k, getattr(cfg, k), getattr(saved, k))]
        if differ:
            said = "; ".join(f"--{k.replace('_', '-')} {getattr(cfg, k)!r} (the run's: {getattr(saved, k)!r})"
                             for k in differ)
            raise UsageError(f"--resume continues {out} as it was started ({out / 'config.json'}), so these would be "
                             f"ignored: {said}. Drop them (--epochs may grow), or start a new run with another --out")
        if given and "cache_dir" in given:  # where the caches live does not change the run
            saved.cache_dir = cfg.cache_dir
        # --epochs left out keeps the run's own (the option's default would silently lengthen a shorter run)
        if (given is None or "epochs" in given) and saved.epochs != cfg.epochs:
            echo(f"resume: training to {cfg.epochs} epochs (was {saved.epochs})")
            saved.epochs = cfg.epochs
        cfg = saved
    elif state_path.exists():
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    else:  # an averaged or recovered run: a model without checkpoints
        check_new_run_folder(out, "train")
    cfg.validate()
    if given and "loss" in given and cfg.age_head().is_distribution:  # --loss has a default: only `given` tells
        raise UsageError("--loss sets a regression head's loss; a distribution head has its own (KL to a Gaussian "
                         "label plus L1 of its mean: train/losses.py), which --loss would not change: drop --loss")
    return cfg


#: Options that name files: the same file under another path (relative, absolute) is the same value.
PATH_OPTIONS = ("data", "teacher", "exclude", "split_file", "weights")


def _same(name: str, given, saved) -> bool:
    """Whether a command-line value is the saved config's."""
    if name in PATH_OPTIONS and given and saved:
        def files(v):
            return [Path(x).resolve() for x in (v if isinstance(v, list) else [v])]

        return files(given) == files(saved)
    return given == saved


def _load_data(cfg: TrainConfig, out: Path, echo) -> TrainingData:
    spec_bb = get_backbone(cfg.backbone)
    size = int(cfg.input_size or spec_bb.default_input_size)
    spec = PreprocessSpec(input_size=size, normalization=spec_bb.normalization, face_crop=cfg.crop)
    sources = load_sources(cfg.data, cfg.data_weight, cfg.format, cfg.split_file, cfg.val_split, cfg.seed, out)
    train_recs = [r for src in sources for r in src.train]
    train_src_w = np.array([src.weight for src in sources for _ in src.train], np.float32)
    val_recs = [r for src in sources for r in src.val]
    if cfg.teacher:  # a wrong teacher fails before the (long) decoding
        check_teachers(cfg.teacher, cfg.age_head(), spec if cfg.teacher_view == "augmented" else None)
    excluded = []
    keys = [(str(r.path), r.line) for r in train_recs]
    gone: set = set()
    for listing in cfg.exclude:  # a typo fails now, before the decoding
        listed = read_label_exclusions(Path(listing))
        named = match_exclusions(listed, keys, listing, "the training split")
        if named & gone:
            raise UsageError(f"{listing}: {len(named & gone)} of its images are in an earlier --exclude list too; "
                             f"name each image in one list")
        gone |= named
        excluded += listed
        echo(f"left out as mislabelled ({listing}): {len(named)} training images")
    if gone:
        keep = [k not in gone for k in keys]
        train_recs, train_src_w = [r for r, k in zip(train_recs, keep) if k], train_src_w[np.array(keep, bool)]
    if not train_recs:
        raise DatasetError(f"{', '.join(cfg.data)}: no images in split 'train'. Give a split file (--split-file) or "
                           f"make one with `agegate data split DATA --out split.csv`")
    if cfg.limit:
        rng = np.random.default_rng(cfg.seed)
        pick = sorted(rng.permutation(len(train_recs))[: cfg.limit])
        train_recs, train_src_w = [train_recs[i] for i in pick], train_src_w[pick]
        val_recs = [val_recs[i] for i in sorted(rng.permutation(len(val_recs))[: max(8, cfg.limit // 4)])]
    cache = Path(cfg.cache_dir) if cfg.cache_dir else None
    train_data = decode_records(train_recs, spec, cfg.strict, "train", cache)
    val_data = decode_records(val_recs, spec, cfg.strict, "val", cache)
    if len(val_data.ages) == 0 or len(train_data.ages) == 0:
        raise DatasetError("no readable images left in train or val after skipping unreadable ones")
    for src in sources:
        echo(f"data: {src.dataset.format} at {src.path}: train {len(src.train)}, {cfg.val_split} {len(src.val)} "
             f"(split: {src.split_origin}; weight {src.weight:g})")
    echo(f"images at {size}px, crop {cfg.crop}: train {len(train_data.ages)}, {cfg.val_split} {len(val_data.ages)} "
         f"({len(train_data.skipped) + len(val_data.skipped)} unreadable, "
         f"{len(train_data.no_face) + len(val_data.no_face)} without a face: listed in model.json)")
    sample_w = None
    if len(sources) > 1 or cfg.age_prior != "none" or any(src.weight != 1 for src in sources):
        sample_w = record_weights(train_data.ages, train_data.subset_weights(train_src_w), cfg.age_prior)
    teachers = None
    if cfg.teacher and cfg.teacher_view == "augmented":  # labelled each epoch (_train_epoch)
        echo(f"distillation: the mean of {len(cfg.teacher)} teacher(s) weighs {cfg.distill_weight:g} in each "
             f"target, computed each epoch on the augmented view the student is shown")
    elif cfg.teacher:
        out.mkdir(parents=True, exist_ok=True)
        teachers = teacher_targets(cfg.teacher, [train_recs[i] for i in train_data.kept], cfg.age_head(),
                                   detect=cfg.crop == "box", out=out)
        echo(f"distillation: the mean of {len(cfg.teacher)} teacher(s) weighs {cfg.distill_weight:g} in each "
             f"target ({teachers.missing} of {len(teachers.probs)} training images without one: label only)")
        if teachers.train_mae is not None:
            echo(f"  the teachers' mean on these training images: MAE {teachers.train_mae:.2f} (far below their "
                 f"val MAE means they trained on these images, and the student learns what they memorised)")
    return TrainingData(spec, sources, train_data, val_data, sample_w, teachers, excluded)


def _model_and_state(cfg: TrainConfig, keras, strategy, data: TrainingData, ckpt_dir: Path, resume: bool):
    with strategy.scope():
        if resume:
            state = load_state(ckpt_dir)
            model = keras.models.load_model(str(ckpt_dir / state["checkpoint"]), custom_objects=custom_objects(keras))
        else:
            keras.utils.set_random_seed(cfg.seed)  # the initial weights depend on the seed only
            model, _ = build_model(cfg.backbone, data.spec.input_size, cfg.weights, cfg.dropout,
                                   float(np.mean(data.train.ages)), cfg.bn_momentum, cfg.age_head())
            state = new_state()
    return model, state


def _train_epoch(model, keras, strategy, cfg: TrainConfig, data: TrainingData, state: dict, epoch: int,
                 n_backbone: int, echo, out: Path) -> dict:
    """One epoch: phase switch, learning rate, reseed, fit, BN recalibration, validation. Returns its history row."""
    phase = "frozen" if epoch < cfg.freeze_epochs else "full"
    if phase != state["phase"]:
        with strategy.scope():
            _set_phase(model, n_backbone, frozen=phase == "frozen")
            _compile(model, keras, cfg)
        state["phase"] = phase
    lr = lr_at(cfg, epoch)
    keras.backend.set_value(model.optimizer.learning_rate, lr)
    keras.utils.set_random_seed(cfg.seed + epoch)
    if cfg.deterministic:
        # Retrace the train step after reseeding: its random ops (dropout) then start from the same
        # state in a resumed process as in an uninterrupted one. Only --deterministic promises that, and
        # a retrace costs seconds per epoch (MobileNetV2: about 9 s of a 16 s epoch of the tests' 800 chips).
        model.make_train_function(force=True)
    echo(f"epoch {epoch + 1}/{cfg.epochs} ({phase}, lr {lr:.2e})")
    if cfg.teacher and cfg.teacher_view == "augmented":
        data.teachers = augmented_teacher_targets(cfg.teacher, data.train, data.spec, cfg.age_head(),
                                                  augment=cfg.augment, seed=cfg.seed, epoch=epoch, out=out)
        echo(f"  teachers on this epoch's views: MAE {data.teachers.train_mae:.2f} against the labels")
    ds = make_dataset(data.train, data.spec, cfg.batch_size, training=True, augment=cfg.augment,
                      seed=cfg.seed, epoch=epoch, minor_weight=cfg.minor_weight, weights=data.sample_weights,
                      teacher_probs=data.teachers.probs if data.teachers else None)
    t0 = time.perf_counter()
    tty = sys.stdout.isatty()
    hist = model.fit(ds, epochs=1, verbose=1 if tty else 2,
                     callbacks=[] if tty else [progress_lines(keras, echo)])
    seconds = time.perf_counter() - t0
    if cfg.bn_recalibrate:
        recalibrate_bn(model, keras, data.train, data.spec, cfg.bn_recalibrate, cfg.batch_size, cfg.seed * 1000 + epoch)
    val_mae = float(model.evaluate(make_dataset(data.val, data.spec, 64, training=False), verbose=0)[1])
    row = {"epoch": epoch + 1, "phase": phase, "lr": lr, "train_loss": float(hist.history["loss"][-1]),
           "train_mae": float(hist.history["mae"][-1]), "val_mae": val_mae, "seconds": round(seconds, 2),
           "images_per_s": round(len(data.train.ages) / seconds, 1)}
    echo(f"  train MAE {row['train_mae']:.3f}  val MAE {val_mae:.3f}  {row['images_per_s']:.0f} img/s  "
         f"{seconds:.0f}s")
    return row


def progress_lines(keras, echo, every_s: float = LOG_EVERY_S, clock=time.monotonic):
    """A Keras callback for a log (not a terminal: `nohup agegate train ... > log`): a progress line at most every
    `every_s` seconds within an epoch, with the loss and MAE so far. Keras writes one line per epoch there, and a
    ResNet50 epoch on a CPU is 20 minutes of silence (15 img/s)."""

    class ProgressLines(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.lines = LogLines(self.params.get("steps"), "  so far", "step", every_s, echo, clock)

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.lines.note = f"loss {logs.get('loss', float('nan')):.3f}, MAE {logs.get('mae', float('nan')):.3f}"
            self.lines.update()

    return ProgressLines()


def _record_epoch(model, cfg: TrainConfig, out: Path, state: dict, row: dict, chief: bool,
                  data: TrainingData) -> None:
    """Update the best/kept bookkeeping, export model.keras with its model.json when kept, checkpoint the epoch.

    The sidecar is written with every export, not only when the run ends: a run stopped after any epoch
    (a CPU session that ran out, a kill) leaves a folder that `convert`, `eval` and `qa` take as it is."""
    state["history"].append(row)
    val_mae = row["val_mae"]
    improved = state["best_val_mae"] is None or val_mae < state["best_val_mae"]
    if improved:
        state.update(best_val_mae=val_mae, best_epoch=row["epoch"], bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["epoch"] = row["epoch"]
    if improved or cfg.keep == "last":
        state.update(kept_val_mae=val_mae, kept_epoch=row["epoch"])
        if chief:
            atomic_save(model, out / MODEL_FILE)
            export_metadata(out, cfg, data.spec, data.sources, data.train, data.val, state, data.teachers,
                            data.excluded)
    if chief:
        save_epoch(model, out / "checkpoints", state, row["epoch"])
        write_history(out, state["history"], state.get("kept_epoch"))


@contextlib.contextmanager
def _precision(keras, precision: str):
    """Keras's dtype policy is global to the process: it holds for this run only, so a model built later
    in the same process (a test, a notebook, `convert` after `train`) computes in float32 again. Left set,
    a mixed_float16 run made every later model float16, which the TFLite converter cannot translate."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def run_training(cfg: TrainConfig, resume: bool = False, echo: Callable[[str], None] = print,
                 given: set[str] | None = None) -> TrainResult:
    """Train, checkpoint every epoch, export the best model (see the module docstring for resumability)."""
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    cfg = _resolve_config(cfg, out, resume, echo, given)
    if not resume:  # a resumed run starts from its checkpoint, not from --weights
        check_weights(cfg.backbone, cfg.weights)
    data = _load_data(cfg, out, echo)

    from .tfenv import import_tf

    tf, keras = import_tf()
    with _precision(keras, cfg.precision):
        strategy = _strategy(tf, cfg.distribute)
        chief = _is_chief()
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            cfg.save(out / "config.json")
        if cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        model, state = _model_and_state(cfg, keras, strategy, data, ckpt_dir, resume)
        n_backbone = len(model.layers) - 2  # the head is dropout + dense
        try:
            for epoch in range(state["epoch"], cfg.epochs):
                row = _train_epoch(model, keras, strategy, cfg, data, state, epoch, n_backbone, echo, out)
                _record_epoch(model, cfg, out, state, row, chief, data)
                if state["bad_epochs"] >= cfg.patience:
                    echo(f"early stopping: val MAE has not improved for {cfg.patience} epochs")
                    break
        except KeyboardInterrupt:
            echo(interrupted_message(out, state))
            raise
        if chief:  # again at the end: trained_epochs counts the epochs after the last kept one too
            export_metadata(out, cfg, data.spec, data.sources, data.train, data.val, state, data.teachers,
                            data.excluded)
            echo(f"best val MAE {state['best_val_mae']:.3f} at epoch {state['best_epoch']}; model: {out / MODEL_FILE} "
                 f"(epoch {kept(state)[0]}, val MAE {kept(state)[1]:.3f})")
        return TrainResult(out, state["best_val_mae"], state["best_epoch"], state["epoch"], model)


def interrupted_message(out: Path, state: dict) -> str:
    """What a Ctrl-C during training leaves, and the command that goes on from it: the epoch in progress is
    lost, every finished one is checkpointed (train/checkpoints.py)."""
    done = state["epoch"]
    if not done:
        return "interrupted in epoch 1: no epoch finished, nothing to resume; run the same command again"
    return (f"interrupted in epoch {done + 1}: {out / 'checkpoints'} holds epoch {done}, {out / MODEL_FILE} "
            f"epoch {kept(state)[0]} (val MAE {kept(state)[1]:.3f}); continue with `agegate train --out {out} "
            f"--resume`")


_BN_FORWARD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> (phase, traced forward)


def recalibrate_bn(model, keras, data, spec: PreprocessSpec, batches: int, batch_size: int, seed: int) -> None:
    """Precise BatchNorm: recompute every BN layer's moving statistics with the epoch's final weights.

    Moving averages lag behind weights that change fast (small data sets, high learning
    rates, training from scratch); a model then looks fine in training mode and outputs
    a constant in inference mode. The mean over `batches` un-augmented training batches of each
    layer's batch statistics replaces them. In training mode a BN layer normalises with the batch's
    own statistics, so the batches are independent: each runs with momentum 0 (the layer keeps that
    batch's statistics), and the mean is taken here. One traced forward serves every batch (running
    the model eagerly per batch cost 6-7 s an epoch for the tests' MobileNetV2 at 48 px).
    """
    from agegate.edge.preprocess import normalize

    from .inputs import model_inputs
    from .tfenv import import_tf

    tf, _ = import_tf()

    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization) and l.trainable]
    if not bns:
        return
    saved = [l.momentum for l in bns]
    for l in bns:
        l.momentum = 0.0
    # One trace per model and training phase (which layers train), not per epoch. Kept beside the model
    # (an attribute would be tracked and saved by Keras); the function holds the model only weakly.
    key = tuple(l.trainable for l in model.layers)
    cached = _BN_FORWARD.get(model)
    if cached is None or cached[0] != key:
        ref = weakref.ref(model)
        cached = _BN_FORWARD[model] = (key, tf.function(lambda x: ref()(x, training=True)))
    forward = cached[1]
    order = np.random.default_rng(seed).permutation(len(data.ages))
    n = min(batches, max(1, len(order) // batch_size))
    sums = [[np.zeros(v.shape, np.float64) for v in (l.moving_mean, l.moving_variance)] for l in bns]
    for i in range(n):
        idx = np.sort(order[i * batch_size : (i + 1) * batch_size])
        forward(tf.constant(normalize(model_inputs(data, spec, idx), spec)))
        for acc, l in zip(sums, bns):
            acc[0] += l.moving_mean.numpy()
            acc[1] += l.moving_variance.numpy()
    for acc, l, m in zip(sums, bns, saved):
        l.moving_mean.assign((acc[0] / n).astype(np.float32))
        l.moving_variance.assign((acc[1] / n).astype(np.float32))
        l.momentum = m


