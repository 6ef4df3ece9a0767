"""Convert, eval and the QA gate on a small model trained here (session fixture)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.runtime import AgeModel

pytestmark = pytest.mark.slow  # trains or converts a model



def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_every_mode_converts_and_loads_in_litert(trained_run, converted, small_utk, tmp_path):
    """float16 and dynamic are converted here; float32 and int8 come from the session fixture."""
    paths = dict(converted)
    for mode in ("float16", "dynamic"):
        paths[mode] = tmp_path / f"{mode}.tflite"
        tta = ["--tta", "mirror", "--json"] if mode == "dynamic" else []
        r = run("convert", trained_run, "--quant", mode, "--out", paths[mode], *tta)
        assert r.exit_code == 0, r.output + repr(r.exception)
        assert "capture" not in r.output.lower()  # the converter's own noise is silenced
        if tta:  # --json: the result for a script
            got = json.loads(r.stdout)
            assert got["ok"] and got["mode"] == "dynamic" and got["path"] == str(paths[mode])
            assert got["size_bytes"] == paths[mode].stat().st_size and got["runs_per_prediction"] == 2
        else:
            assert f"{mode}," in r.output and "op types" in r.output
    sizes = {}
    for mode, path in paths.items():
        m = AgeModel(path)
        assert m.meta.quantization == mode and m.meta.extra["io"] == "float32"
        assert m.meta.source_sha256 and m.meta.preprocess.input_size == 48
        assert m.meta.tta == ("mirror" if mode == "dynamic" else "none")
        assert m.has_features  # every converted model exposes its pooled features (buyer separation)
        sizes[mode] = path.stat().st_size
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    r = run("convert", trained_run, "--quant", "int8", "--io", "int8", "--calibration", small_utk,
            "--calibration-size", 20, "--out", tmp_path / "io8.tflite")
    assert r.exit_code == 0 and "input int8, output int8" in r.output
    assert "capture" not in r.output.lower()
    assert run("convert", trained_run, "--quant", "int8", "--out", tmp_path / "x.tflite").exit_code == 2


def test_converting_over_a_calibrated_model_needs_force(trained_run, shipped_model, tmp_path):
    """A calibrated file's sidecar carries an operating point that a conversion over it would silently drop."""
    import shutil

    out = tmp_path / "m.tflite"
    shutil.copy(shipped_model, out)
    shutil.copy(shipped_model.with_suffix(".json"), out.with_suffix(".json"))
    before = out.read_bytes()
    r = run("convert", trained_run, "--quant", "float32", "--out", out)
    assert r.exit_code == 2 and "is calibrated (operating point 0.072787" in r.output and "--force" in r.output
    assert out.read_bytes() == before
    r = run("convert", trained_run, "--quant", "float32", "--out", out, "--force")
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["operating_point"] is None
    assert run("convert", trained_run, "--quant", "float32", "--out", out).exit_code == 0  # uncalibrated: rebuilt


def test_int8_tracks_float_and_eval_json(converted, small_utk, tmp_path):
    preds = {}
    for mode, path in converted.items():
        r = run("eval", "--model", path, "--data", small_utk, "--split", "test", "--json",
                "--predictions", tmp_path / f"{mode}.csv")
        assert r.exit_code == 0, r.output
        m = json.loads(r.output)
        for key in ("n", "mae", "rmse", "median_ae", "cs5", "bias", "bands", "challenge25"):
            assert key in m
        assert m["n"] == 200 and set(m["bands"]) == {"0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64",
                                                     "65+"}
        c = m["challenge25"]
        for key in ("false_pass_rate", "minor_pass_18_rate", "flag_rate_25plus", "safe_threshold",
                    "safe_flag_rate_25plus"):
            assert key in c
        preds[mode] = np.array([float(l.split(",")[2]) for l in (tmp_path / f"{mode}.csv").read_text().splitlines()[1:]])
    r = np.corrcoef(preds["float32"], preds["int8"])[0, 1]
    assert r > 0.9, r


def test_keras_and_tflite_float_agree(trained_run, converted, small_utk):
    from agegate.convert.evaluate import predict, select_records

    recs = select_records(str(small_utk), "auto", None, "test", 40)
    k = predict(trained_run, recs, progress=False)
    t = predict(converted["float32"], recs, progress=False)
    np.testing.assert_allclose(k.y_pred, t.y_pred, atol=0.05)


def test_qa_gate_passes_good_and_fails_broken_int8(trained_run, converted, small_utk, tmp_path):
    # The tiny model's predictions crowd around 25, so a few flip: the flip gate is loosened here and
    # tested on the shipped model (README table); drift and collapse keep their defaults.
    r = run("qa", "--float", converted["float32"], "--quantized", converted["int8"], "--data", small_utk,
            "--max-mae", 99, "--max-flips", 0.1, "--out", tmp_path / "qa_good")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "qa_good" / "report.json").read_text())
    assert rep["passed"] and rep["comparison"]["decision_flip_rate"] <= 0.1
    from agegate.edge.metadata import sha256_file, sidecar_path

    assert rep["quantized_sha256"] == sha256_file(converted["int8"])  # what `bundle build` holds it to
    assert rep["quantized_metadata_sha256"] == sha256_file(sidecar_path(converted["int8"]))
    # which data the verdict stands on, in the report and, signed, in a bundle built on it
    n_test = (small_utk / "split.csv").read_text().count(",test")
    assert rep["data"] == [{"name": small_utk.name, "path": str(small_utk), "split": "test", "images": n_test,
                            "skipped": 0, "limit": None}] and rep["notes"] == []
    assert f"judged on {small_utk.name} [test] ({n_test} images)" in r.output
    # Challenge-25 shares in the page as percentages of counted people (they read as raw fractions, 1.0 for all)
    c25 = rep["quantized_metrics"]["challenge25"]
    page = (tmp_path / "qa_good" / "report.html").read_text()
    passed = round(c25["false_pass_rate"] * c25["n_minors"])
    assert f"quantized {100 * c25['false_pass_rate']:.1f} % ({passed})\nof {c25['n_minors']};" in page
    # MAE and bias by band for both models, drawn the page's full width (eval --bands's chart)
    assert (tmp_path / "qa_good" / "bands.png").stat().st_size > 1000 and '<img alt="bands.png" class=wide' in page
    assert run("bundle", "keygen", "--out", tmp_path / "k").exit_code == 0
    r = run("bundle", "build", "--model", converted["int8"], "--qa", tmp_path / "qa_good" / "report.json",
            "--sign-key", tmp_path / "k.pem", "--version", "1", "--out", tmp_path / "b.tar.gz")
    assert r.exit_code == 0, r.output
    r = run("bundle", "info", tmp_path / "b.tar.gz", "--pub", tmp_path / "k.pub")
    assert f"QA passed on {small_utk.name} [test] {n_test} images, MAE" in r.output, r.output
    for png in ("scatter.png", "error_by_age.png", "bland_altman.png"):
        assert (tmp_path / "qa_good" / png).stat().st_size > 1000
    assert "Bland-Altman" in (tmp_path / "qa_good" / "report.html").read_text()
    # int8 calibrated on blank images: every activation range is wrong
    blank = tmp_path / "blank"
    (blank / "final_files").mkdir(parents=True)
    lines = ["file_name,real_age"]
    import cv2

    for i in range(20):
        cv2.imwrite(str(blank / "final_files" / f"{i}.jpg"), np.full((64, 64, 3), 128, np.uint8))
        lines.append(f"{i}.jpg,30")
    (blank / "labels.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "split.csv").write_text("file_name,split\n" + "".join(f"{i}.jpg,train\n" for i in range(20)))
    broken = tmp_path / "broken.tflite"
    r = run("convert", trained_run, "--quant", "int8", "--calibration", blank, "--split-file", tmp_path / "split.csv",
            "--out", broken)
    assert r.exit_code == 0, r.output
    r = run("qa", "--float", converted["float32"], "--quantized", broken, "--data", small_utk, "--max-mae", 99,
            "--max-flips", 0.1, "--out", tmp_path / "qa_bad")
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output
    rep = json.loads((tmp_path / "qa_bad" / "report.json").read_text())
    assert not rep["passed"] and any(not g["passed"] for g in rep["gates"])


def test_business_gate_refuses_mae_8_or_more(converted, small_utk, tmp_path):
    """The small test model is far from MAE 8: the default gate must refuse it."""
    r = run("qa", "--float", converted["float32"], "--quantized", converted["int8"], "--data", small_utk,
            "--out", tmp_path / "qa", "--json")
    rep = json.loads(r.output)
    assert r.exit_code == 1 and not next(g for g in rep["gates"] if g["name"] == "mae")["passed"]


def test_qa_counts_the_images_it_judged_not_the_labels(converted, small_utk, tmp_path):
    """A test image that cannot be read is left out of the verdict; the report and its line said the labels'
    count ("62 images") beside "on 60 images". Now the images judged, and how many were left out."""
    import shutil

    data = tmp_path / "utk"
    shutil.copytree(small_utk, data)
    broken = next(line.split(",")[0] for line in (data / "split.csv").read_text().splitlines() if line.endswith(",test"))
    (data / "images" / broken).write_bytes(b"not a jpeg")
    n_test = (data / "split.csv").read_text().count(",test")
    r = run("qa", "--float", converted["float32"], "--quantized", converted["int8"], "--data", data,
            "--out", tmp_path / "qa", "--json")
    rep = json.loads(r.output)
    assert (rep["data"][0]["images"], rep["data"][0]["skipped"], rep["n"]) == (n_test - 1, 1, n_test - 1)
    r = run("qa", "--float", converted["float32"], "--quantized", converted["int8"], "--data", data,
            "--out", tmp_path / "qa2")
    assert f"({n_test - 1} images; 1 left out, unreadable or no face)" in r.output


def test_float_layers_keeps_the_worst_layers_float(trained_run, converted, small_utk, tmp_path):
    """--float-layers 2: the two layers the debugger ranks worst stay float32 (their output tensors are
    float in the file), everything else stays int8, and the metadata says which."""
    out = tmp_path / "mixed.tflite"
    r = run("convert", trained_run, "--quant", "int8", "--calibration", small_utk, "--calibration-size", 40,
            "--float-layers", 2, "--out", out)
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert r.output.count("kept float: ") == 2 and "int8-mixed" in r.output
    m = AgeModel(out)
    kept = m.meta.extra["float_layers"]
    assert m.meta.quantization == "int8-mixed" and len(kept) == 2 and kept[0]["steps"] >= kept[1]["steps"]
    assert all(_computes_in_float(m, k["tensor"]) for k in kept)
    assert not any(_computes_in_float(AgeModel(converted["int8"]), k["tensor"]) for k in kept)  # plain int8 did not
    dtypes = [d["dtype"] for d in m.interpreter.get_tensor_details()]
    assert sum(dt == np.int8 for dt in dtypes) > 10  # the rest is still int8
    assert np.isfinite(m.predict_face(np.full((60, 60, 3), 120, np.uint8)))
    bad = run("convert", trained_run, "--quant", "dynamic", "--float-layers", 1, "--out", tmp_path / "d.tflite")
    assert bad.exit_code == 2 and "--float-layers" in bad.output


def test_float_layers_skip_layers_too_big_to_keep_float(trained_run, small_utk):
    """A layer kept float stores its weights in 4 bytes instead of 1: one with more weights than the cap
    stays int8 however badly it ranks, and the next one in the ranking takes its place."""
    from agegate.convert.evaluate import select_records
    from agegate.convert.mixed_int8 import layer_errors, mixed_int8
    from agegate.convert.tflite import calibration_images, load_keras_model

    model, meta = load_keras_model(trained_run)
    calib = calibration_images(select_records(str(small_utk), "auto", None, "train"), meta.preprocess, 40)
    ranked = layer_errors(model, calib)
    weighted = [e for e in ranked if e.params > 0]
    assert weighted
    worst = weighted[0]
    _, kept = mixed_int8(model, calib, 2, max_params=worst.params - 1)
    assert worst.tensor not in {e.tensor for e in kept} and len(kept) == 2
    assert all(e.params < worst.params for e in kept)


def _computes_in_float(model: AgeModel, output_tensor: str) -> bool:
    """Whether the op that writes `output_tensor` has float32 weights (its second input). In a plain int8
    file the weights are int8, or the tensor is the model's output, written by a DEQUANTIZE."""
    interp = model.interpreter
    details = interp.get_tensor_details()
    by_name = {d["name"]: d["index"] for d in details}
    dtype = {d["index"]: d["dtype"] for d in details}
    op = next(o for o in interp._get_ops_details() if by_name[output_tensor] in list(o["outputs"]))  # noqa: SLF001
    return len(op["inputs"]) > 1 and dtype[int(op["inputs"][1])] == np.float32


def test_debug_layers_lists_worst_layers(trained_run, converted, small_utk, tmp_path):
    r = run("qa", "--float", trained_run, "--quantized", converted["int8"], "--data", small_utk, "--limit", 30,
            "--max-mae", 99, "--debug-layers", "--out", tmp_path / "qa")
    assert "layer " in r.output, r.output
    rep = json.loads((tmp_path / "qa" / "report.json").read_text())
    assert len(rep["debug_layers"]) > 0 and rep["debug_layers"][0]["steps"] >= rep["debug_layers"][-1]["steps"]
    assert rep["data"][0]["limit"] == 30 and any("(--limit): a quick look" in n for n in rep["notes"])


@pytest.mark.parametrize("backbone", ["mobilenet_v2"])
def test_qat_then_int8(small_utk, tmp_path, backbone):
    run_dir = tmp_path / "run"
    r = run("train", "--data", small_utk, "--backbone", backbone, "--weights", "none", "--input-size", 32,
            "--epochs", 1, "--limit", 32, "--out", run_dir)
    assert r.exit_code == 0, r.output
    out = tmp_path / "qat.tflite"
    r = run("convert", run_dir, "--qat", "--data", small_utk, "--epochs", 1, "--qat-limit", 32,
            "--calibration-size", 8, "--out", out)
    assert r.exit_code == 0, r.output + repr(r.exception)
    m = AgeModel(out)
    assert m.meta.quantization == "int8-qat"
    assert np.isfinite(m.predict_face(np.full((60, 60, 3), 120, np.uint8)))


@pytest.mark.parametrize("backbone", ["resnet50", "efficientnet_lite0", "mobilenet_v2_torch"])
def test_qat_wraps_the_other_qat_backbones(backbone):
    """The registry says QAT supports these: agegate's QAT scheme wraps the flat model and it runs. (The whole
    convert --qat path is tested on MobileNetV2 above; on ResNet50 it took 183 s of the suite for no more.)"""
    from agegate.convert.qat import quantize_model
    from agegate.train.backbones import build_model, get_backbone

    assert get_backbone(backbone).qat
    model, _ = build_model(backbone, 32, "none", 0.2, 30.0, 0.9)
    qmodel = quantize_model(model)
    y = qmodel(np.zeros((2, 32, 32, 3), np.float32), training=False).numpy()
    assert y.shape == (2, 1) and np.isfinite(y).all()
    assert any("quant" in layer.name for layer in qmodel.layers)


def test_qat_starts_each_activation_range_at_the_float_models_own():
    """tfmot starts every range at [-6, 6] (the input's at [0, 0]); a short QAT then trains through clipped
    activations. After `init_activation_ranges` each range is that layer's float min and max on the images,
    and the quantized model, before any training, is closer to its float parent than with tfmot's start."""
    import tensorflow_model_optimization as tfmot

    from agegate.convert.qat import init_activation_ranges
    from agegate.train.backbones import build_model

    model, _ = build_model("mobilenet_v2", 32, "none", 0.2, 30.0, 0.9)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    want = model(x, training=False).numpy()
    plain = tfmot.quantization.keras.quantize_model(model)
    started = tfmot.quantization.keras.quantize_model(model)
    assert init_activation_ranges(started, model, x) > 50
    ranges = {w.name: float(w.numpy()) for w in started.weights if w.name.endswith(("output_min:0", "output_max:0"))}
    project = model.get_layer("expanded_conv_project_BN")(  # a linear layer's output: no ReLU6 bounds it
        model.get_layer("expanded_conv_project")(model.get_layer("expanded_conv_depthwise_relu").output))
    out = np.asarray(type(model)(model.inputs, project)(x, training=False))
    assert ranges["quant_expanded_conv_project_BN/output_min:0"] == pytest.approx(min(0.0, float(out.min())), abs=1e-5)
    assert ranges["quant_expanded_conv_project_BN/output_max:0"] == pytest.approx(max(0.0, float(out.max())), abs=1e-5)
    err_plain = np.abs(plain(x, training=False).numpy() - want).mean()
    err_started = np.abs(started(x, training=False).numpy() - want).mean()
    assert err_started < err_plain, (err_started, err_plain)


def test_qat_rounds_each_depthwise_channel_with_its_own_range_as_tflite_does():
    """tfmot's default scheme gives a depthwise kernel one range (its last axis is the depth multiplier);
    TFLite's int8 rounds each channel with its own. After one training step each depthwise layer holds one
    range per channel, and it is that channel's own largest weight."""
    from agegate.convert.qat import quantize_model
    from agegate.train.backbones import build_model

    model, _ = build_model("mobilenet_v2", 32, "none", 0.2, 30.0, 0.9)
    qmodel = quantize_model(model)
    qmodel(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32), training=True)
    depthwise = [l for l in qmodel.layers if type(getattr(l, "layer", None)).__name__ == "DepthwiseConv2D"]
    assert len(depthwise) == 17
    for wrapper in depthwise:
        kernel = wrapper.layer.depthwise_kernel.numpy()  # (kh, kw, channels, 1)
        top = {w.name.split("/")[-1]: w.numpy() for w in wrapper.weights if "depthwise_kernel_m" in w.name}
        per_channel = np.abs(kernel).max(axis=(0, 1, 3))
        assert top["depthwise_kernel_max:0"].shape == (kernel.shape[2],)
        np.testing.assert_allclose(top["depthwise_kernel_max:0"], per_channel, rtol=1e-5)


def test_qat_refuses_backbones_tfmot_cannot_wrap(small_utk, tmp_path):
    run_dir = tmp_path / "run"
    assert run("train", "--data", small_utk, "--backbone", "mobilenet_v3_small", "--weights", "none",
               "--input-size", 48, "--epochs", 1, "--limit", 32, "--out", run_dir).exit_code == 0
    r = run("convert", run_dir, "--qat", "--data", small_utk, "--out", tmp_path / "q.tflite")
    assert r.exit_code == 2 and "QAT supports resnet50, mobilenet_v2," in r.output


def test_mirror_tta_averages_both_views_and_qa_refuses_mixed(trained_run, converted, small_utk, tmp_path):
    import shutil

    from agegate.convert.predictor import KerasPredictor, open_predictor
    from agegate.edge.metadata import TtaViews
    from agegate.edge.preprocess import decode_image, mirror as mirror_view, normalize, prepare_uint8

    mirror = tmp_path / "mirror.tflite"
    shutil.copy(converted["float32"], mirror)
    meta = json.loads(converted["float32"].with_suffix(".json").read_text())
    mirror.with_suffix(".json").write_text(json.dumps({**meta, "tta": "mirror"}))
    plain, mirrored = AgeModel(converted["float32"]), AgeModel(mirror)
    img = decode_image(sorted((small_utk / "images").iterdir())[0])
    x = normalize(prepare_uint8(img, plain.spec), plain.spec)
    a, b = plain.run_tensor(x), plain.run_tensor(np.ascontiguousarray(x[:, ::-1]))
    assert a != b  # an asymmetric face: the two views differ, so the test can see the average
    assert mirrored.predict_face(img) == pytest.approx((a + b) / 2, abs=1e-4)
    r = run("qa", "--float", converted["float32"], "--quantized", mirror, "--data", small_utk, "--split", "test",
            "--out", tmp_path / "qa")
    assert r.exit_code == 2 and "different test-time augmentation" in r.output
    # A run folder has no augmentation of its own (convert adds it): QA predicts it the converted way,
    # so the float32 child of the run, mirrored, is no gap at all from its mirrored parent.
    r = run("qa", "--float", trained_run, "--quantized", mirror, "--data", small_utk, "--split", "test",
            "--max-mae", 99, "--out", tmp_path / "qa", "--json")
    assert r.exit_code in (0, 1), r.output
    assert json.loads(r.output)["comparison"]["mean_abs_diff"] < 0.01
    plain_keras, mirror_keras = KerasPredictor(trained_run), KerasPredictor(trained_run, TtaViews("mirror"))
    batch = np.asarray(x, np.float32).reshape((1, *np.shape(x)[-3:]))
    k, k_flipped = plain_keras.raw(batch)[0, 0], plain_keras.raw(mirror_view(batch))[0, 0]
    assert abs(k - k_flipped) > 1e-3 and mirror_keras.raw(batch)[0, 0] == pytest.approx((k + k_flipped) / 2, abs=1e-4)
    with pytest.raises(Exception, match="converted with test-time augmentation mirror, not none"):
        open_predictor(mirror, views=TtaViews("none"))
    mirror.with_suffix(".json").write_text(json.dumps({**meta, "tta": "spin"}))
    with pytest.raises(Exception, match="unknown tta"):
        AgeModel(mirror)


def test_a_float_parent_is_run_at_its_childs_sizes(trained_run, small_utk, tmp_path):
    """`convert --tta-size` writes the sizes; QA then runs the Keras parent at the same sizes (its weights
    rebuilt for each input), so a float32 child is no gap from it, and the sizes do change the answer."""
    from agegate.convert.predictor import KerasPredictor
    from agegate.convert.tflite import at_input_size
    from agegate.edge.metadata import TtaViews
    from agegate.edge.preprocess import decode_image, normalize, prepare_uint8, resize_input

    two = tmp_path / "two.tflite"
    r = run("convert", trained_run, "--quant", "float32", "--tta-size", "160", "--out", two, "--json")
    assert r.exit_code == 0, r.output
    assert (json.loads(r.output)["tta_sizes"], json.loads(r.output)["runs_per_prediction"]) == ([160], 2)
    assert json.loads(two.with_suffix(".json").read_text())["format_version"] == 2
    r = run("qa", "--float", trained_run, "--quantized", two, "--data", small_utk, "--split", "test",
            "--max-mae", 99, "--out", tmp_path / "qa", "--json")
    assert r.exit_code in (0, 1), r.output
    assert json.loads(r.output)["comparison"]["mean_abs_diff"] < 0.01
    model = AgeModel(two)
    x = normalize(prepare_uint8(decode_image(sorted((small_utk / "images").iterdir())[0]), model.spec), model.spec)
    plain = KerasPredictor(trained_run)
    big = at_input_size(plain.model, plain.meta, 160).predict(resize_input(x[None], 160), verbose=0)[0, 0]
    small = plain.raw(x[None])[0, 0]
    assert abs(big - small) > 1e-3  # the view at 160 px answers otherwise, so the mean below can be seen
    both = KerasPredictor(trained_run, TtaViews("none", (160,))).raw(x[None])[0, 0]
    assert both == pytest.approx((small + big) / 2, abs=1e-4)
    assert model.raw_tensor(x)[0] == pytest.approx(both, abs=1e-3)
