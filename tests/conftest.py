"""Shared fixtures: small real data sets built from ../shared/datasets/utkface, crafted bad files,
and one small trained model (session scope) for the convert/QA/bench tests."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
UTK = Path(os.environ.get("AGEGATE_UTK", REPO.parent / "shared" / "datasets" / "utkface"))  # overridable to try a run without it


def need_shared() -> None:
    """Tests on real chips need ../shared. Without it they fail (CI must notice a missing data set),
    unless AGEGATE_NO_SHARED=1 asks for the tests that run without it (model-free units, browser,
    fleet, box config): those needing the data are then skipped, module by module."""
    if (UTK / "split.csv").exists():
        return
    if os.environ.get("AGEGATE_NO_SHARED") == "1":
        pytest.skip(f"needs {UTK} (AGEGATE_NO_SHARED=1)", allow_module_level=True)
    pytest.fail(f"the shared UTKFace data set is missing at {UTK}; tests need ../shared beside the checkout "
                f"(AGEGATE_NO_SHARED=1 runs only the tests that do not)")


def utk_rows(split: str | None = None) -> list[dict]:
    need_shared()
    rows = list(csv.DictReader(open(UTK / "split.csv")))
    return [r for r in rows if split is None or r["split"] == split]


def utk_age(name: str) -> int:
    return int(name.split("_")[0])


def pick(split: str, n: int, seed: int = 0, lo: int = 0, hi: int = 200) -> list[str]:
    rows = [r["file_name"] for r in utk_rows(split) if lo <= utk_age(r["file_name"]) <= hi]
    rng = np.random.default_rng(seed)
    return [rows[i] for i in sorted(rng.permutation(len(rows))[:n])]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """The suite runs on two pytest-xdist workers (pyproject: -n 2 --dist loadgroup). Costly shared
    fixtures are built once: every test that uses the small trained model goes to one worker, and the
    tests of a module with a module-scoped fixture stay together."""
    for item in items:
        if {"trained_run", "converted"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("trained_model"))
            continue
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        if any(d.scope == "module" for fixture_defs in defs.values() for d in fixture_defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(scope="session")
def utk_root() -> Path:
    utk_rows()
    return UTK


def build_appa(root: Path, names: list[str]) -> Path:
    """An APPA-REAL (brief layout) folder: labels.csv + final_files/ from UTKFace chips."""
    (root / "final_files").mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "real_age"])
        for i, n in enumerate(names):
            dst = f"{i:06d}.jpg"
            shutil.copy(UTK / "images" / n, root / "final_files" / dst)
            w.writerow([dst, utk_age(n)])
    return root


@pytest.fixture
def appa_dir(tmp_path) -> Path:
    return build_appa(tmp_path / "appa", pick("train", 30, seed=1))


def build_utk_subset(root: Path, per_split: dict[str, int], seed: int = 0) -> Path:
    """A UTKFace-layout folder (images/ + split.csv) with a few chips per split."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    with open(root / "split.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "split"])
        for split, n in per_split.items():
            for name in pick(split, n, seed):
                shutil.copy(UTK / "images" / name, root / "images" / name)
                w.writerow([name, split])
    return root


@pytest.fixture(scope="session")
def small_utk(tmp_path_factory) -> Path:
    """800 train / 100 val / 200 test chips: the training and conversion tests' data."""
    return build_utk_subset(tmp_path_factory.mktemp("utk_small"), {"train": 800, "val": 100, "test": 200})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_utk) -> Path:
    """A MobileNetV2 at 48 px trained for 4 epochs on 800 chips from random weights (about a minute)."""
    from click.testing import CliRunner

    from agegate.edge.cli import cli

    out = tmp_path_factory.mktemp("runs") / "mnv2"
    res = CliRunner().invoke(cli, ["train", "--data", str(small_utk), "--backbone", "mobilenet_v2", "--weights",
                                   "none", "--input-size", "48", "--epochs", "4", "--batch-size", "32", "--lr",
                                   "1e-3", "--augment", "none", "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


@pytest.fixture(scope="session")
def converted(trained_run, small_utk, tmp_path_factory) -> dict[str, Path]:
    """The trained run in float32 and int8 .tflite."""
    from click.testing import CliRunner

    from agegate.edge.cli import cli

    out = tmp_path_factory.mktemp("tflite")
    paths = {}
    for mode in ("float32", "int8"):
        p = out / f"m-{mode}.tflite"
        args = ["convert", str(trained_run), "--quant", mode, "--out", str(p)]
        if mode == "int8":
            args += ["--calibration", str(small_utk), "--calibration-size", "100"]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output + repr(res.exception)
        paths[mode] = p
    return paths


def write_bad_images(root: Path, good: list[str]) -> None:
    """Real chips as good{i}.jpg, and from them every kind of bad or odd image file: truncated.jpg,
    empty.jpg (0 bytes), text.jpg, rgba.png, sixteen.png (16-bit), grey.jpg, cmyk.jpg."""
    from PIL import Image

    for i, n in enumerate(good):
        shutil.copy(UTK / "images" / n, root / f"good{i}.jpg")
    data = (UTK / "images" / good[1]).read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not an image\n")
    img = cv2.imread(str(UTK / "images" / good[2]))
    cv2.imwrite(str(root / "rgba.png"), cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(root / "sixteen.png"), (img.astype(np.uint16) * 257))
    cv2.imwrite(str(root / "grey.jpg"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).convert("CMYK").save(root / "cmyk.jpg")


@pytest.fixture
def bad_files_dir(tmp_path) -> Path:
    """A generic-CSV data set whose rows cover every problem `data check` must report, as real files."""
    root = tmp_path / "bad"
    root.mkdir()
    good = pick("train", 3, seed=5)
    write_bad_images(root, good)
    shutil.copy(UTK / "images" / good[0], root / "dup_bytes.jpg")  # same bytes as good0
    rows = [("good0.jpg", "30", "train"), ("good1.jpg", "41", "val"), ("good2.jpg", "abc", "train"),
            ("dup_bytes.jpg", "30", "test"), ("truncated.jpg", "20", "train"), ("empty.jpg", "20", "train"),
            ("text.jpg", "20", "train"), ("rgba.png", "20", "train"), ("sixteen.png", "20", "train"),
            ("grey.jpg", "20", "train"), ("cmyk.jpg", "20", "train"), ("missing.jpg", "20", "train"),
            ("good1.jpg", "41", "val"), ("good2.jpg", "150", "train"), ("good2.jpg", "33", "holdout")]
    write_labels(root / "labels.csv", rows)
    return root


def write_labels(path: Path, rows: list[tuple], header: tuple = ("path", "age", "split")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def labelled_chips(root: Path, names: list[str]) -> Path:
    """A CSV data set without splits: these UTKFace chips copied into root, labelled with their ages."""
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(UTK / "images" / n, root / n)
    return write_labels(root / "labels.csv", [(n, utk_age(n)) for n in names], header=("path", "age"))


def copy_model(src: Path, dst: Path) -> Path:
    """A model file with its metadata sidecar, copied (for tests that rewrite the sidecar)."""
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def face_frame(names: list[str], size=(640, 480), face_px: int = 200, dx: int = 0) -> np.ndarray:
    """A BGR checkout frame with the given UTKFace chips side by side on a grey background."""
    w, h = size
    frame = np.full((h, w, 3), 96, np.uint8)
    step = w // (len(names) + 1)
    for i, n in enumerate(names):
        chip = cv2.resize(cv2.imread(str(UTK / "images" / n)), (face_px, face_px))
        x0 = step * (i + 1) - face_px // 2 + dx
        y0 = (h - face_px) // 2
        frame[y0 : y0 + face_px, x0 : x0 + face_px] = chip
    return frame


def queue_frame(front: str, behind: str | None, dx: int = 0) -> np.ndarray:
    """A BGR till frame: the chip `front` at 200 px left of centre and `behind` (someone further back, waiting)
    at 100 px to the right: half the side, under `tracking.BEHIND_SHARE` of it."""
    frame = np.full((480, 640, 3), 96, np.uint8)
    for name, side, x0, y0 in [(behind, 100, 440, 150), (front, 200, 160 + dx, 140)]:
        if name:
            frame[y0:y0 + side, x0:x0 + side] = cv2.resize(cv2.imread(str(UTK / "images" / name)), (side, side))
    return frame


def write_video(path: Path, segments: list[tuple[list[str], int]], fps: int = 15) -> Path:
    """segments: (chips shown together, frames); [] shows an empty till. OpenCV VideoWriter, mp4v."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    assert writer.isOpened()
    for names, n in segments:
        for i in range(n):
            writer.write(face_frame(names, dx=int(4 * np.sin(i / 3))) if names else np.full((480, 640, 3), 96,
                                                                                            np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    from agegate.edge.default_model import default_model_path

    return default_model_path()


def _cli(*args):
    from click.testing import CliRunner

    from agegate.edge.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def kit(tmp_path_factory, shipped_model):
    """Keys, a passing QA report for the shipped model, and four signed bundles (1.0.0 .. 1.3.0)."""
    d = tmp_path_factory.mktemp("kit")
    assert _cli("bundle", "keygen", "--out", d / "fleet").exit_code == 0
    assert _cli("bundle", "keygen", "--out", d / "other").exit_code == 0
    model = copy_model(shipped_model, d / "model.tflite")
    qa = d / "qa.json"
    qa.write_text(json.dumps({"passed": True, "quantized_model": str(model), "n": 10, "gates": [],
                              "quantized_metrics": {"mae": 5.0}}))
    failed = d / "qa_failed.json"
    failed.write_text(json.dumps({"passed": False, "quantized_model": str(model), "n": 10,
                                  "gates": [{"name": "mae", "passed": False, "value": 9.1, "limit": "< 8"}],
                                  "quantized_metrics": {"mae": 9.1}}))
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        r = _cli("bundle", "build", "--model", model, "--qa", qa, "--sign-key", d / "fleet.pem", "--name", "m",
                 "--version", v, "--out", d / f"b-{v}.tar.gz")
        assert r.exit_code == 0, r.output + repr(r.exception)
    return d




@pytest.fixture
def cli():
    """Run `agegate ARGS...` in-process (click's CliRunner); paths may be Path objects."""
    return _cli


def portrait_video(path: Path, side: int = 360, frames: int = 30, turn: int = 0) -> Path:
    """The demo portrait hopper_78.jpg (BlazeFace finds it at every size the tests use) `side` px tall in a
    640x480 frame, swaying a little: a buyer at the till, without ../shared. `turn`: the portrait turned this many
    degrees clockwise in the frame (a camera mounted on its side)."""
    from agegate.edge.default_model import assets_dir
    from agegate.edge.preprocess import decode_image

    portrait = sorted((assets_dir() / "demo").glob("*.jpg"))[1]
    img = cv2.cvtColor(cv2.resize(decode_image(portrait), (side, side)), cv2.COLOR_RGB2BGR)
    img = np.ascontiguousarray(np.rot90(img, -turn // 90))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 110, np.uint8)
        x, y = 320 - side // 2 + int(6 * np.sin(i / 4)), 240 - side // 2
        frame[max(0, y):y + side, x:x + side] = img[max(0, -y):480 - y]
        writer.write(frame)
    writer.release()
    return path


def gaussian_model(path: Path, centre: float, spread: float = 4.0, shift: float = 0.0) -> Path:
    """A real float .tflite with a distribution head whose logits are a fixed Gaussian around `centre`
    (the image only nudges them): a model whose answer a test knows. Built with TensorFlow (slow).
    `shift`: the centre moves by this many years per unit of the image's mean normalised pixel (summed over
    the three channels), so the answer follows the image's brightness (a teacher that sees the view)."""
    from agegate.edge.age_head import AgeHead
    from agegate.edge.metadata import ModelMetadata, write_metadata
    from agegate.edge.preprocess import PreprocessSpec
    from agegate.train.tfenv import import_tf

    head = AgeHead.distribution()
    tf, keras = import_tf()
    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    bias = -0.5 * ((head.ages - centre) / spread) ** 2
    # Completing the square: adding m * shift * (age - centre) / spread**2 to the Gaussian's logits moves its
    # centre by m * shift (m: a channel's mean), so each channel's kernel row is that slope.
    slope = np.tile((shift * (head.ages - centre) / spread**2)[None, :], (3, 1))
    out = keras.layers.Dense(head.n_bins, kernel_initializer=keras.initializers.Constant(slope.tolist()),
                             bias_initializer=keras.initializers.Constant(bias.tolist()))(x)
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert())
    write_metadata(path, ModelMetadata("tiny", 32, PreprocessSpec(32, normalization="mobilenet"), head=head))
    return path
