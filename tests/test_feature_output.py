"""The pooled-features output added to a .tflite file (convert/feature_output.py) and read by the box."""
import json

import numpy as np
import pytest

from agegate.convert.feature_output import add_feature_output, with_feature_output
from agegate.edge.default_model import default_model_path
from agegate.edge.metadata import read_metadata, write_metadata
from agegate.edge.runtime import AgeModel, make_interpreter


@pytest.fixture(scope="module")
def tiny():
    """A tiny pooled-features -> Dense model converted without the features output, and its Keras
    model's pooled features for the same input."""
    from agegate.train.tfenv import import_tf

    tf, keras = import_tf()
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3)(pooled)
    model = keras.Model(inp, out)
    blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    return blob, x, keras.Model(inp, [out, pooled])(x)


def _outputs(path, x):
    it, _ = make_interpreter(path, threads=1)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return [it.get_tensor(o["index"]).copy() for o in it.get_output_details()]


def test_the_added_output_is_the_pooled_features_and_the_age_output_is_unchanged(tiny, tmp_path):
    blob, x, (keras_out, keras_pooled) = tiny
    before, after = tmp_path / "before.tflite", tmp_path / "after.tflite"
    before.write_bytes(blob)
    after.write_bytes(with_feature_output(blob))
    (old,), (new, feats) = _outputs(before, x), _outputs(after, x)
    assert np.array_equal(old, new)  # the model's answer is byte for byte the same
    np.testing.assert_allclose(feats, keras_pooled, rtol=1e-5, atol=1e-6)  # the FC layer's input, not another tensor
    assert with_feature_output(after.read_bytes()) == after.read_bytes()  # a second pass changes nothing


def test_the_box_reads_features_from_the_shipped_model(tmp_path):
    """The shipped default model carries them; the features of one face are unit norm and repeatable, another
    face's differ, reading them leaves the age estimate as it was, and an estimate that reuses the features'
    run is the same as one that does not."""
    from agegate.edge.demo import demo_faces
    from agegate.edge.detect import DetectorOptions, FaceDetector, box_crop
    from agegate.edge.preprocess import decode_image

    m = AgeModel(default_model_path())
    assert m.has_features
    detector = FaceDetector(DetectorOptions.for_photos())
    a, b = (box_crop(decode_image(p), detector, m.spec.face_margin)[0] for p, _ in demo_faces()[:2])
    before = m.estimate_face(a)
    alone = m.features_face(a)
    assert abs(float(np.linalg.norm(alone)) - 1) < 1e-4
    np.testing.assert_allclose(m.features_face(a), alone, atol=1e-6)
    assert float(alone @ m.features_face(b)) < 0.9
    assert m.estimate_face(a).age == before.age
    run = m.run_face(a)  # the box's path: one run for the look, reused as the estimate's first view
    np.testing.assert_allclose(run.features, alone, atol=1e-6)
    assert abs(run.age - before.age) < 5  # one view's reading, for the tracker; the estimate averages two
    shared = m.estimate_run(run)
    assert shared.age == before.age and np.array_equal(shared.probs, before.probs)
    assert m.meta.runs_per_prediction == 2  # so the shared run saves one of two


def test_a_model_without_features_still_loads_and_add_feature_output_copies_the_sidecar(tmp_path):
    """Older files (one output) are read as before; the retrofit writes the file and its sidecar."""
    from agegate.train.tfenv import import_tf

    import_tf()
    from tensorflow.lite.tools import flatbuffer_utils

    src = default_model_path()
    plain = tmp_path / "plain.tflite"  # the shipped model with its features output taken off again
    model = flatbuffer_utils.read_model(str(src))
    model.subgraphs[0].outputs = model.subgraphs[0].outputs[:1]
    for sig in model.signatureDefs:
        sig.outputs = sig.outputs[:1]
    flatbuffer_utils.write_model(model, str(plain))
    write_metadata(plain, read_metadata(src))
    old = AgeModel(plain)
    assert not old.has_features and old.features_face(np.zeros((64, 64, 3), np.uint8)) is None
    again = tmp_path / "again.tflite"
    add_feature_output(plain, again)
    assert AgeModel(again).has_features
    assert json.loads(again.with_suffix(".json").read_text())["head"] == read_metadata(src).head.to_dict()
