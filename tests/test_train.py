"""Training stage on ~200 real UTKFace chips: every backbone family, resume, export, bad input."""
import hashlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.preprocess import PreprocessSpec, decode_image, normalize, prepare_uint8
from agegate.train.config import TrainConfig
from agegate.train.loop import run_training

from .conftest import build_appa, build_utk_subset, pick

pytestmark = pytest.mark.slow  # trains or converts a model


def train_args(data, out, *extra):
    return ["train", "--data", str(data), "--out", str(out), "--batch-size", "32", *map(str, extra)]


@pytest.mark.parametrize("backbone,size", [("resnet50", 64), ("mobilenet_v2", 64), ("mobilenet_v3_small", 64),
                                           ("efficientnet_b0", 64)])
def test_one_epoch_per_backbone_family(small_utk, tmp_path, backbone, size):
    """Each family builds, trains, validates and exports (several epochs, resume and export of the best
    are tested below on one backbone)."""
    out = tmp_path / backbone
    res = CliRunner().invoke(cli, train_args(small_utk, out, "--backbone", backbone, "--weights", "none",
                                             "--input-size", size, "--epochs", 1, "--limit", 64))
    assert res.exit_code == 0, res.output + repr(res.exception)
    meta = json.loads((out / "model.json").read_text())
    assert meta["backbone"] == backbone and meta["input_size"] == size
    assert meta["preprocess"]["normalization"] == {"resnet50": "caffe", "efficientnet_b0": "raw"}.get(backbone,
                                                                                                      "mobilenet")
    assert len(meta["data_fingerprint"]) == 16 and meta["metrics"]["val"]["n"] > 0
    hist = (out / "history.csv").read_text().splitlines()
    assert len(hist) == 2 and (out / "curves.png").exists()
    assert "img/s" in res.output


def test_best_epoch_exported_and_round_trip(trained_run, small_utk):
    """The session model (4 epochs): the best epoch is exported, and model.keras predicts like its checkpoint.

    (That val MAE falls is checked on the full data set by the README's smoke command, not on 800 chips
    from random weights, where 4 epochs barely beat the mean.)"""
    from agegate.convert.tflite import load_keras_model

    rows = [l.split(",") for l in (trained_run / "history.csv").read_text().splitlines()[1:]]
    val = [float(r[5]) for r in rows]
    meta = json.loads((trained_run / "model.json").read_text())
    assert meta["metrics"]["val"]["mae"] == pytest.approx(min(val), abs=1e-3)  # the best epoch is exported
    model, meta = load_keras_model(trained_run)
    files = sorted((small_utk / "images").iterdir())[:8]
    x = np.stack([normalize(prepare_uint8(decode_image(f), meta.preprocess), meta.preprocess) for f in files])
    y = model.predict(x, verbose=0).reshape(-1)
    # the best epoch's checkpoint file (with optimizer) is a second, independent save of the same weights
    state = json.loads((trained_run / "checkpoints" / "state.json").read_text())
    if state["best_epoch"] == state["epoch"]:
        from agegate.train.tfenv import import_tf

        _, keras = import_tf()
        ck = keras.models.load_model(str(trained_run / "checkpoints" / state["checkpoint"]))
        np.testing.assert_allclose(ck.predict(x, verbose=0).reshape(-1), y, rtol=1e-5, atol=1e-4)
    assert np.std(y) > 0


def test_keep_last_exports_the_in_memory_final_model(small_utk, tmp_path):
    cfg = TrainConfig(data=str(small_utk), out=str(tmp_path / "r"), backbone="mobilenet_v3_small", weights="none",
                      input_size=48, epochs=2, batch_size=32, limit=64, augment="none", keep="last", patience=5)
    result = run_training(cfg, echo=lambda *_: None)
    from agegate.convert.tflite import load_keras_model

    exported, meta = load_keras_model(result.out)
    last_val = float((result.out / "history.csv").read_text().splitlines()[-1].split(",")[5])
    assert meta.metrics["val"]["mae"] == pytest.approx(last_val, abs=1e-3)
    assert meta.extra["exported_epoch"] == 2
    x = np.random.default_rng(0).uniform(-1, 1, (4, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(exported.predict(x, verbose=0), result.model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-4)


def signal_after_first_epoch(args: list[str], out, sig: int, **popen) -> subprocess.Popen:
    """`agegate ARGS` (a train) in a subprocess, sent `sig` once epoch 1's checkpoint is recorded in `out`."""
    popen = popen or dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-m", "agegate.edge", *args], **popen)
    state = out / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            proc.send_signal(sig)
            break
        time.sleep(0.2)
    return proc


def test_resume_after_kill_equals_uninterrupted(small_utk, tmp_path):
    # With the Challenge-25 loss options: the checkpoint carries agegate's own loss, which must reload.
    args = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--input-size", "48", "--epochs", "2",
            "--limit", "96", "--deterministic", "--augment", "light", "--patience", "10", "--minor-weight", "2",
            "--minor-overshoot-weight", "3"]
    full = tmp_path / "full"
    r = CliRunner().invoke(cli, train_args(small_utk, full, *args))
    assert r.exit_code == 0, r.output
    # The same run in a subprocess, killed (SIGKILL) once epoch 1's checkpoint is recorded.
    part = tmp_path / "part"
    proc = signal_after_first_epoch(train_args(small_utk, part, *args), part, signal.SIGKILL)
    state = part / "checkpoints" / "state.json"
    proc.wait(timeout=60)
    assert json.loads(state.read_text())["epoch"] < 2, "the run finished before it could be interrupted"
    # the stopped run is already a model: model.keras with the sidecar that describes it
    meta = json.loads((part / "model.json").read_text())
    assert meta["extra"]["exported_epoch"] == 1 == meta["extra"]["trained_epochs"]
    assert meta["source_sha256"] == hashlib.sha256((part / "model.keras").read_bytes()).hexdigest()
    r = CliRunner().invoke(cli, train_args(small_utk, part, *args, "--resume"))
    assert r.exit_code == 0, r.output
    h_full = json.loads((full / "checkpoints" / "state.json").read_text())["history"]
    h_part = json.loads(state.read_text())["history"]
    assert [h["epoch"] for h in h_part] == [1, 2]
    np.testing.assert_allclose([h["val_mae"] for h in h_part], [h["val_mae"] for h in h_full], rtol=1e-5)


def test_ctrl_c_says_how_to_resume_and_resume_needs_only_the_run(small_utk, tmp_path):
    """Ctrl-C (SIGINT) in epoch 2 of 3 names the checkpoint kept and the command that goes on; that command
    (`--out RUN --resume`, no --data, no --epochs) finishes the run's own 3 epochs, not the option's default."""
    out = tmp_path / "run"
    args = train_args(small_utk, out, "--backbone", "mobilenet_v3_small", "--weights", "none", "--input-size", 48,
                      "--epochs", 3, "--limit", 96, "--augment", "none", "--patience", 10)
    proc = signal_after_first_epoch(args, out, signal.SIGINT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
    state = out / "checkpoints" / "state.json"
    said, _ = proc.communicate(timeout=120)
    done = json.loads(state.read_text())["epoch"]
    assert proc.returncode == 1 and done < 3, said
    assert f"interrupted in epoch {done + 1}: {out / 'checkpoints'} holds epoch {done}" in said
    assert f"agegate train --out {out} --resume" in said
    r = CliRunner().invoke(cli, ["train", "--out", str(out), "--resume", "--json"])
    assert r.exit_code == 0, r.output
    assert "training to" not in r.output  # the run's 3 epochs kept, not --epochs' default of 20
    assert [h["epoch"] for h in json.loads(state.read_text())["history"]] == [1, 2, 3]
    # --json: Keras's progress and agegate's went to stderr, stdout is one JSON object
    summary = json.loads(r.stdout)
    assert summary["ok"] and summary["epochs_trained"] == 3 and summary["model"] == str(out / "model.keras")
    assert summary["sources"][0]["path"] == str(small_utk) and summary["sources"][0]["split_sizes"]["train"] > 0
    assert "epoch 3/3" in r.stderr
    r = CliRunner().invoke(cli, ["train", "--out", str(tmp_path / "other")])
    assert r.exit_code == 2 and "Missing option '--data'" in r.output


def test_a_log_gets_a_progress_line_a_minute_within_an_epoch():
    """Keras writes one line per epoch to a log; the callback adds one at most every 60 s (a fake clock here)."""
    from agegate.train.loop import progress_lines
    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    now, said = [0.0], []
    callback = progress_lines(keras, said.append, 60.0, clock=lambda: now[0])
    callback.set_params({"steps": 100, "epochs": 1})
    callback.on_epoch_begin(0)
    for batch in range(100):
        now[0] += 7.0  # a step every 7 s: a line every ninth step
        callback.on_train_batch_end(batch, {"loss": 3.0, "mae": 2.5})
    assert len(said) == 11
    assert said[0] == "  so far: 9/100 steps (9 %), 1.1 min, about 10.6 min left; loss 3.000, MAE 2.500"


def test_the_curves_star_the_epoch_the_run_keeps_and_shade_the_frozen_ones():
    """curves.png once showed epochs 1.5 and 2.5 and not which epoch model.keras holds (the best by val MAE, or
    the last with --keep last), nor which epochs trained the head alone."""
    import matplotlib.pyplot as plt

    from agegate.train.run_export import draw_curves

    history = [{"epoch": e, "phase": "frozen" if e == 1 else "full", "train_loss": 9.0 - e, "train_mae": 8.0 - e,
                "val_mae": v} for e, v in ((1, 9.0), (2, 7.5), (3, 7.9))]
    fig = draw_curves(history, kept_epoch=2)
    loss, mae = fig.axes
    star = [line for line in mae.lines if line.get_marker() == "*"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [2] and list(star[0].get_ydata()) == [7.5]
    assert "kept: epoch 2, val 7.50" in [t.get_text() for t in mae.get_legend().get_texts()]
    fig.canvas.draw()
    assert all(float(t.get_text()).is_integer() for t in mae.get_xticklabels() if t.get_text())
    shaded = [p for p in loss.patches if p.get_label() == "backbone frozen"]
    x0, x1 = loss.transData.inverted().transform(shaded[0].get_extents())[:, 0]  # Rectangle or Polygon alike
    assert len(shaded) == 1 and (round(x0, 6), round(x1, 6)) == (0.5, 1.5)  # epoch 1
    plt.close(fig)
    fig = draw_curves(history)  # no epoch kept yet: nothing starred
    assert not [line for line in fig.axes[1].lines if line.get_marker() == "*"]
    plt.close(fig)


def test_minor_overshoot_loss_weights_only_minors_estimated_too_old():
    from agegate.train.losses import make_loss
    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    y = np.array([[5.0], [16.0], [30.0], [17.0], [40.0]], np.float32)
    p = np.array([[9.0], [15.0], [33.0], [17.5], [35.0]], np.float32)
    per_plain = keras.losses.Huber(delta=2.0, reduction="none")(y, p).numpy()
    np.testing.assert_allclose(make_loss(keras, "huber", 1.0)(y, p).numpy(), per_plain.mean(), rtol=1e-6)
    # Only rows 0 and 3 (minors estimated above their age) are weighted; the minor estimated younger
    # (row 1) and the adults over- and under-estimated (rows 2, 4) keep the plain loss.
    weights = np.array([3.0, 1.0, 1.0, 3.0, 1.0])
    np.testing.assert_allclose(make_loss(keras, "huber", 3.0)(y, p).numpy(), (per_plain * weights).mean(), rtol=1e-6)
    np.testing.assert_allclose(make_loss(keras, "mae", 3.0)(y, p).numpy(),
                               (np.abs(p - y).ravel() * weights).mean(), rtol=1e-6)
    with pytest.raises(Exception, match="minor-overshoot-weight"):
        TrainConfig(data=".", out=".", minor_overshoot_weight=0.5).validate()


def test_distillation_loss_learns_the_teachers_and_the_label_alone_without_them():
    from agegate.edge.age_head import AgeHead
    from agegate.train.losses import age_distribution_loss_class, expected_age_mae_class
    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    head = AgeHead.distribution()

    def logits(centre):
        return (-0.5 * ((head.ages - centre) / 2.0) ** 2)[None, :].astype(np.float32)

    teacher = np.exp(logits(40)) / np.exp(logits(40)).sum()
    loss = age_distribution_loss_class(keras)
    kl_only = dict(l1_weight=0.0)
    with_teacher = np.concatenate([[[20.0]], teacher], axis=1).astype(np.float32)  # label 20, teachers say 40
    distil = loss(distill_weight=1.0, **kl_only)
    assert float(distil(with_teacher, logits(40))) < float(distil(with_teacher, logits(20)))
    plain = loss(**kl_only)
    assert float(plain([[20.0]], logits(20))) < float(plain([[20.0]], logits(40)))
    # Half and half: the target is the mixture, so a prediction between the two beats either peak alone
    half = loss(distill_weight=0.5, **kl_only)
    mixture = np.log(np.maximum(0.5 * np.exp(logits(20)) / np.exp(logits(20)).sum() + 0.5 * teacher, 1e-30))
    assert float(half(with_teacher, mixture)) < min(float(half(with_teacher, logits(20))),
                                                    float(half(with_teacher, logits(40))))
    # A row no teacher saw (zeros) trains on its label alone, L1 term included; the MAE metric reads the label
    no_teacher = np.concatenate([[[20.0]], np.zeros_like(teacher)], axis=1).astype(np.float32)
    pred = logits(33)
    np.testing.assert_allclose(float(loss(distill_weight=1.0)(no_teacher, pred)), float(loss()([[20.0]], pred)),
                               rtol=1e-6)
    mae = expected_age_mae_class(keras)()
    mae.update_state(with_teacher, pred)
    assert float(mae.result()) == pytest.approx(13.0, abs=0.01)
    with pytest.raises(Exception, match="--head distribution"):
        TrainConfig(data=".", out=".", teacher=["t.tflite"]).validate()


def test_challenge25_term_adds_the_cross_entropy_of_the_mass_below_25_for_minors_and_adults_only():
    from agegate.edge.age_head import AgeHead
    from agegate.train.losses import age_distribution_loss_class
    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    head = AgeHead.distribution()

    def logits(centre, sigma=3.0):
        return (-0.5 * ((head.ages - centre) / sigma) ** 2).astype(np.float32)

    # minor seen as 30, minor seen as 15, 21-year-old seen as 30, adult seen as 22, adult seen as 40
    y = np.array([[15.0], [15.0], [21.0], [30.0], [30.0]], np.float32)
    x = np.stack([logits(30), logits(15), logits(30), logits(22), logits(40)])
    loss = age_distribution_loss_class(keras)
    plain = loss(reduction="none")(y, x).numpy()
    added = (loss(c25_weight=2.0, reduction="none")(y, x).numpy() - plain) / 2.0
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    under25 = p[:, head.ages < 25].sum(axis=1)
    # the added term is -log P(under 25) for a minor, -log P(25+) for an adult, nothing at 18-24
    expected = [-np.log(under25[0]), -np.log(under25[1]), 0.0, -np.log(1 - under25[3]), -np.log(1 - under25[4])]
    np.testing.assert_allclose(added, expected, rtol=1e-4, atol=1e-5)
    # it grows with the wrong side of 25: a minor seen as 30 costs far more than one seen as 15
    assert added[0] > 10 * added[1] and added[3] > 10 * added[4]
    # a confident wrong answer stays finite (log-sum-exp, no log(0))
    assert np.isfinite(loss(c25_weight=1.0, reduction="none")([[10.0]], logits(80, sigma=1.0)[None]).numpy()).all()
    with pytest.raises(Exception, match="--head distribution"):
        TrainConfig(data=".", out=".", c25_weight=1.0).validate()
    with pytest.raises(Exception, match="c25-weight"):
        TrainConfig(data=".", out=".", head="distribution", c25_weight=-1.0).validate()


def test_distillation_run_caches_teacher_targets_and_records_the_teachers(small_utk, trained_run, tmp_path):
    from agegate.edge.metadata import sha256_file

    from .conftest import gaussian_model

    teacher = gaussian_model(tmp_path / "teacher60.tflite", 60.0)
    out = tmp_path / "student"
    args = train_args(small_utk, out, "--backbone", "mobilenet_v2", "--weights", "none", "--input-size", 48,
                      "--epochs", 1, "--limit", 64, "--head", "distribution", "--teacher", teacher,
                      "--distill-weight", 1.0)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "distillation: the mean of 1 teacher(s) weighs 1" in r.output
    z = np.load(out / "teacher-targets.npz")
    probs = z["probs"].astype(np.float32)
    assert probs.shape == (64, 101) and np.all(probs.argmax(axis=1) == 60)  # what this teacher says of everyone
    distil = json.loads((out / "model.json").read_text())["extra"]["distillation"]
    assert 15 < distil.pop("teachers_train_mae") < 60  # a teacher saying 60 of UTKFace chips (mostly 20-40)
    assert "the teachers' mean on these training images: MAE" in r.output
    assert distil == {"teachers": [{"path": str(teacher), "sha256": sha256_file(teacher)}], "weight": 1.0,
                      "rows": 64, "rows_without_teacher": 0}
    # --resume reuses the targets rather than running the teachers again
    stamp = (out / "teacher-targets.npz").stat().st_mtime_ns
    r = CliRunner().invoke(cli, ["train", "--data", str(small_utk), "--out", str(out), "--resume", "--epochs", "2"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert (out / "teacher-targets.npz").stat().st_mtime_ns == stamp
    # A regression model cannot teach a distribution, and says so before any decoding
    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "bad", "--backbone", "mobilenet_v2", "--weights",
                                           "none", "--input-size", 48, "--epochs", 1, "--limit", 32, "--head",
                                           "distribution", "--teacher", trained_run))
    assert r.exit_code != 0 and "distribution head" in r.output


def test_teachers_label_the_augmented_view_the_student_is_shown(small_utk, tmp_path):
    """--teacher-view augmented: each row's target is the teacher's reading of the very view that row is
    shown in that epoch (so it changes with the epoch), whatever the shuffle."""
    from agegate.edge.metadata import read_metadata
    from agegate.edge.preprocess import NORMALIZATIONS
    from agegate.edge.runtime import AgeModel
    from agegate.train.datasets import read_dataset
    from agegate.train.distill import augmented_teacher_targets
    from agegate.train.inputs import decode_records, make_dataset

    from .conftest import gaussian_model

    teacher = gaussian_model(tmp_path / "bright.tflite", 40.0, shift=8.0)  # older on brighter views
    spec = PreprocessSpec(48, normalization="mobilenet")
    recs = read_dataset(small_utk).split("train")[:24]
    split = decode_records(recs, spec, False, "train", None)
    head = read_metadata(teacher).head
    got = [augmented_teacher_targets([str(teacher)], split, spec, head, augment="till", seed=3, epoch=e,
                                     out=tmp_path, progress=False) for e in (0, 1)]
    assert (tmp_path / "teacher-targets-epoch001.npz").exists() and (tmp_path / "teacher-targets-epoch002.npz").exists()
    modes = [g.probs.argmax(axis=1) for g in got]
    assert np.ptp(modes[0]) >= 3 and np.mean(modes[0] != modes[1]) > 0.3  # views differ, and so do the answers
    # Each shuffled training sample carries the teacher's answer on its own image
    model = AgeModel(teacher)
    offset, scale, _ = NORMALIZATIONS[spec.normalization]
    ds = make_dataset(split, spec, 8, training=True, augment="till", seed=3, epoch=1, teacher_probs=got[1].probs)
    checked = 0
    for xs, labels in ds:
        for x, label in zip(xs.numpy(), labels.numpy()):
            view = np.clip(np.rint(x / np.array(scale) + np.array(offset)), 0, 255).astype(np.uint8)
            own = model.meta.preprocess
            expected = head.probabilities(model.raw(normalize(prepare_uint8(view, own), own)[None]))[0]
            assert np.abs(label[1:] - expected).max() < 0.02
            checked += 1
    assert checked == 24
    # The cache answers a second call (same key) without running the teacher
    stamp = (tmp_path / "teacher-targets-epoch002.npz").stat().st_mtime_ns
    again = augmented_teacher_targets([str(teacher)], split, spec, head, augment="till", seed=3, epoch=1,
                                      out=tmp_path, progress=False)
    assert (tmp_path / "teacher-targets-epoch002.npz").stat().st_mtime_ns == stamp
    assert np.array_equal(again.probs, got[1].probs)


def test_augmented_view_distillation_run_records_its_view(small_utk, tmp_path):
    from .conftest import gaussian_model

    teacher = gaussian_model(tmp_path / "bright.tflite", 40.0, shift=8.0)
    out = tmp_path / "student"
    r = CliRunner().invoke(cli, train_args(small_utk, out, "--backbone", "mobilenet_v2", "--weights", "none",
                                           "--input-size", 48, "--epochs", 2, "--limit", 48, "--head",
                                           "distribution", "--augment", "till", "--teacher", teacher,
                                           "--teacher-view", "augmented"))
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "computed each epoch on the augmented view" in r.output
    assert r.output.count("teachers on this epoch's views: MAE") == 2
    assert not (out / "teacher-targets.npz").exists()
    a, b = (np.load(out / f"teacher-targets-epoch00{e}.npz")["probs"] for e in (1, 2))
    assert a.shape == (48, 101) and not np.array_equal(a, b)
    distil = json.loads((out / "model.json").read_text())["extra"]["distillation"]
    assert distil["view"] == "augmented" and distil["rows"] == 48
    # A teacher that frames faces otherwise cannot label the student's crops: refused before any decoding
    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "bad", "--backbone", "mobilenet_v2", "--weights",
                                           "none", "--input-size", 48, "--epochs", 1, "--limit", 16, "--head",
                                           "distribution", "--crop", "box", "--teacher", teacher,
                                           "--teacher-view", "augmented"))
    assert r.exit_code != 0 and "frame faces alike" in r.output


def test_imagenet_offline_fails_at_once_with_alternatives(small_utk, tmp_path):
    """At once: before the data are read (with --crop box, minutes of detector work), and no run folder made."""
    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "o", "--backbone", "mobilenet_v2", "--weights",
                                           "imagenet", "--epochs", 1, "--limit", 32))
    assert r.exit_code == 1
    assert "--weights PATH" in r.output and "--weights none" in r.output
    assert "--weights pretrained" in r.output and "mobilenet_v2_torch, efficientnet_lite0" in r.output
    assert "data:" not in r.output and not (tmp_path / "o").exists()
    # so is a start that is not there or not of a kind that seeds the backbone
    for weights, said in (("nope.keras", "nope.keras: no such file"), (str(small_utk / "split.csv"),
                          "expected a .h5 or .keras file"), ("pretrained", "PyTorch weights seed only")):
        r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "o", "--backbone", "mobilenet_v2", "--weights",
                                               weights, "--epochs", 1, "--limit", 32))
        assert r.exit_code == 2 and said in r.output and "data:" not in r.output, r.output
        assert not (tmp_path / "o").exists()


def test_loss_given_with_a_distribution_head_is_refused_not_ignored(small_utk, tmp_path):
    """--loss sets a regression head's loss; with --head distribution it changed nothing and said nothing."""
    args = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--head", "distribution", "--limit", 32]
    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "d", *args, "--loss", "mae"))
    assert r.exit_code == 2 and "drop --loss" in r.output and not (tmp_path / "d").exists()
    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "r", "--head", "regression", "--loss", "mae",
                                           "--epochs", 0))  # a regression head takes it (refused here for --epochs)
    assert r.exit_code == 2 and "--epochs" in r.output and "--loss" not in r.output


def test_weights_path_seeds_backbone_and_rejects_wrong_file(small_utk, trained_run, tmp_path):
    from agegate.train.backbones import build_model

    seeded, _ = build_model("mobilenet_v2", 80, str(trained_run / "model.keras"))
    from agegate.convert.tflite import load_keras_model

    src, _ = load_keras_model(trained_run)
    np.testing.assert_allclose(seeded.get_layer("Conv1").get_weights()[0], src.get_layer("Conv1").get_weights()[0])
    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "w", "--backbone", "resnet50", "--weights",
                                           trained_run / "model.keras", "--epochs", 1, "--limit", 32))
    assert r.exit_code == 1 and "matched" in r.output


def test_gpu_recipe_flags_train_on_cpu_and_the_run_converts(small_utk, tmp_path):
    """The README's GPU recipe (mixed precision, mirrored strategy) on CPU: it trains, and its run converts.
    A mixed-precision run saves float16 layer policies, which the TFLite converter cannot translate; the
    converter's loader rebuilds the model in float32 with the same weights."""
    from agegate.convert.tflite import load_keras_model
    from agegate.edge.runtime import AgeModel

    r = CliRunner().invoke(cli, train_args(small_utk, tmp_path / "m", "--backbone", "mobilenet_v3_small",
                                           "--weights", "none", "--input-size", 48, "--epochs", 1, "--limit", 64,
                                           "--distribute", "mirrored", "--precision", "mixed_float16"))
    assert r.exit_code == 0, r.output + repr(r.exception)
    from agegate.train.tfenv import import_tf

    # The dtype policy is process-wide: the run must not leave later models in this process float16
    assert import_tf()[1].mixed_precision.global_policy().name == "float32"
    model, _ = load_keras_model(tmp_path / "m")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    out = tmp_path / "m.tflite"
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "m"), "--quant", "float32", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(AgeModel(out).raw(x), model.predict(x, verbose=0), rtol=1e-3, atol=1e-3)


def test_bad_inputs_have_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "final_files").mkdir(parents=True)
    (empty / "labels.csv").write_text("file_name,real_age\n")
    # --weights none: the default, imagenet, is refused first on a machine without the model hub
    r = CliRunner().invoke(cli, train_args(empty, tmp_path / "o1", "--epochs", 1, "--weights", "none"))
    assert r.exit_code == 1 and "no labelled images" in r.output
    noval = build_appa(tmp_path / "noval", pick("train", 20, seed=4))
    (tmp_path / "split.csv").write_text("file_name,split\n" + "".join(f"{i:06d}.jpg,train\n" for i in range(20)))
    r = CliRunner().invoke(cli, train_args(noval, tmp_path / "o2", "--split-file", tmp_path / "split.csv",
                                           "--weights", "none"))
    assert r.exit_code == 1 and "no images in split 'val'" in r.output and "agegate data split" in r.output
    # too few for the split a run makes to put any in val: said so (it pointed to `data split`, which gives none either)
    tiny = build_appa(tmp_path / "tiny", pick("train", 2, seed=4))
    r = CliRunner().invoke(cli, train_args(tiny, tmp_path / "o3", "--weights", "none"))
    assert r.exit_code == 1 and "made of its 2 labelled image(s) left none there" in r.output, r.output


def test_unreadable_image_skipped_or_fatal_with_strict(tmp_path):
    root = build_utk_subset(tmp_path / "d", {"train": 40, "val": 10})
    victim = sorted((root / "images").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:300])  # truncated after the split was made
    base = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--input-size", 48, "--epochs", 1]
    r = CliRunner().invoke(cli, train_args(root, tmp_path / "skip", *base))
    assert r.exit_code == 0, r.output
    assert "(1 unreadable, 0 without a face" in r.output
    assert json.loads((tmp_path / "skip" / "model.json").read_text())["extra"]["skipped_unreadable"] == 1
    r = CliRunner().invoke(cli, train_args(root, tmp_path / "strict", *base, "--strict"))
    assert r.exit_code == 1 and "unreadable image" in r.output


def test_full_disk_while_checkpointing_keeps_last_good(small_utk, tmp_path, trained_run):
    """A real full disk: the run folder on a small tmpfs that holds one epoch's files but not two."""
    ck = next((trained_run / "checkpoints").glob("epoch-*.keras")).stat().st_size
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    size = int(ck * 2.6)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)]).returncode != 0:
        pytest.fail("could not mount a tmpfs for the full-disk test (needs root)")
    try:
        out = mnt / "run"
        r = CliRunner().invoke(cli, train_args(small_utk, out, "--backbone", "mobilenet_v2", "--weights", "none",
                                               "--input-size", 48, "--epochs", 3, "--limit", 96,
                                               "--augment", "none"))
        assert r.exit_code == 1, r.output
        assert "previous checkpoint there is intact" in r.output and "--resume" in r.output
        state = json.loads((out / "checkpoints" / "state.json").read_text())
        assert state["epoch"] >= 1
        from agegate.train.tfenv import import_tf

        _, keras = import_tf()
        keras.models.load_model(str(out / "checkpoints" / state["checkpoint"]))  # loads: complete
        assert not list(out.rglob("*.tmp.keras"))
    finally:
        subprocess.run(["umount", str(mnt)])


def test_normalize_is_identical_in_numpy_and_tensorflow(utk_root):
    from agegate.train.tfenv import import_tf

    tf, _ = import_tf()
    img = prepare_uint8(decode_image(sorted((utk_root / "images").iterdir())[5]), PreprocessSpec(64))
    for norm in ("mobilenet", "caffe", "raw", "unit"):
        spec = PreprocessSpec(64, normalization=norm)
        np.testing.assert_allclose(normalize(img, spec), normalize(tf.constant(img), spec).numpy(), atol=1e-5)
