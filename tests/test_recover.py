"""`agegate recover`: a float model rebuilt from a converted .tflite (convert/recover.py)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from agegate.convert.recover import dequantize, to_keras_layout
from agegate.edge.cli import cli
from agegate.edge.metadata import read_metadata, sha256_file

pytestmark = pytest.mark.slow  # converts and rebuilds a model (TensorFlow)


def test_dequantize_uses_each_channels_scale_and_zero_point():
    q = np.array([[[[-128, 0]]], [[[10, 127]]]], np.int8)  # (out=2, 1, 1, in=2), channel axis 0
    got = dequantize(q, {"scales": [0.5, 0.25], "zero_points": [0, 10], "quantized_dimension": 0})
    assert got.reshape(2, 2).tolist() == [[-64.0, 0.0], [0.0, 29.25]]
    assert dequantize(np.ones(3, np.float32), {"scales": [], "zero_points": []}).tolist() == [1, 1, 1]
    assert to_keras_layout("conv", np.zeros((8, 3, 3, 4))).shape == (3, 3, 4, 8)
    assert to_keras_layout("depthwise", np.zeros((1, 3, 3, 4))).shape == (3, 3, 4, 1)
    assert to_keras_layout("dense", np.zeros((101, 1280))).shape == (1280, 101)


def test_recover_rebuilds_the_float_model_of_an_int8_file(trained_run, converted, small_utk, tmp_path):
    """The recovered model is the float parent up to int8 weight rounding: closer to the parent than the
    int8 file is (which adds activation rounding), and a seed that `train --weights` takes whole."""
    from agegate.convert.evaluate import predict, select_records
    from agegate.train.backbones import build_model

    out = tmp_path / "rec"
    r = CliRunner().invoke(cli, ["recover", str(converted["int8"]), "--data", str(small_utk), "--images", "64",
                                 "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    info = json.loads(r.output)
    assert info["sha256"] == sha256_file(converted["int8"]) and info["batchnorm_images"] == 64
    meta = read_metadata(out)
    assert meta.quantization == "none" and meta.extra["recovered_from"]["quantization"] == "int8"

    recs = select_records(str(small_utk), "auto", None, "test", limit=80)
    parent, child, rebuilt = (predict(m, recs, progress=False) for m in (trained_run, converted["int8"], out))
    assert parent.paths == rebuilt.paths
    rebuilt_gap = np.abs(rebuilt.y_pred - parent.y_pred).mean()
    child_gap = np.abs(child.y_pred - parent.y_pred).mean()
    assert np.corrcoef(rebuilt.y_pred, parent.y_pred)[0, 1] > 0.99
    assert rebuilt_gap < child_gap, (rebuilt_gap, child_gap)

    build_model("mobilenet_v2", 48, str(out / "model.keras"))  # fails under 90 % of layers matched

    # QA: the file it was recovered from is not its child; a model converted from it is, with a note
    qa = ["qa", "--float", str(out), "--data", str(small_utk), "--split", "test", "--limit", "40"]
    r = CliRunner().invoke(cli, [*qa, "--quantized", str(converted["int8"]), "--out", str(tmp_path / "qa0")])
    assert r.exit_code == 2 and "was recovered from" in r.output
    child2 = tmp_path / "again.tflite"
    r = CliRunner().invoke(cli, ["convert", str(out), "--quant", "int8", "--calibration", str(small_utk),
                                 "--calibration-size", "40", "--out", str(child2)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    r = CliRunner().invoke(cli, [*qa, "--quantized", str(child2), "--out", str(tmp_path / "qa1"), "--json"])
    assert r.exit_code in (0, 1), r.output + repr(r.exception)
    assert "recovered from m-int8.tflite" in json.loads(r.output)["notes"][0]


def test_recover_restores_batchnorm_statistics(trained_run, converted, small_utk, tmp_path):
    """BatchNorm comes back with the statistics of real images: in training mode (batch statistics) the
    recovered model departs from its inference output about as much as the float parent does, where
    BatchNorm left as the identity (folded statistics only) computes something else entirely."""
    from agegate.convert.evaluate import select_records
    from agegate.convert.recover import kernel_layers, load_folded, read_tflite_weights, recover
    from agegate.convert.tflite import calibration_images
    from agegate.train.backbones import build_model
    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    recs = select_records(str(small_utk), "auto", None, "train")
    meta = recover(converted["int8"], recs, tmp_path / "rec", images=128)
    x = calibration_images(recs, meta.preprocess, 128, seed=1)

    def train_mode_gap(model) -> float:
        next(l for l in model.layers if l.name == "head_dropout").rate = 0.0
        return float(np.abs(np.asarray(model(x, training=True)) - np.asarray(model(x, training=False))).mean())

    rebuilt = keras.models.load_model(str(tmp_path / "rec" / "model.keras"), compile=False)
    parent = keras.models.load_model(str(trained_run / "model.keras"), compile=False)
    identity, _ = build_model(meta.backbone, meta.input_size, "none", head=meta.head)
    load_folded(identity, read_tflite_weights(converted["int8"], identity.name, set(kernel_layers(identity, keras))),
                keras)
    rebuilt_gap, parent_gap, identity_gap = map(train_mode_gap, (rebuilt, parent, identity))
    assert rebuilt_gap < 2 * parent_gap + 0.5, (rebuilt_gap, parent_gap)
    assert identity_gap > 3 * rebuilt_gap, (identity_gap, rebuilt_gap)


def test_recover_refuses_a_file_it_cannot_read(tmp_path, small_utk):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"not a model")
    r = CliRunner().invoke(cli, ["recover", str(bad), "--data", str(small_utk), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "m.json" in r.output  # no metadata: says which sidecar is missing
    (tmp_path / "m.json").write_text(json.dumps({"backbone": "nope", "input_size": 32,
                                                  "preprocess": {"input_size": 32}}))
    r = CliRunner().invoke(cli, ["recover", str(bad), "--data", str(small_utk), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "unknown backbone 'nope'" in r.output
