"""A model run at more than one input size (`agegate tta --size`, metadata `tta_sizes`), on the shipped file."""
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge import metadata as metadata_module
from agegate.edge.cli import cli
from agegate.edge.errors import ModelError
from agegate.edge.metadata import read_metadata, sha256_file
from agegate.edge.preprocess import decode_image, mirror, normalize, prepare_uint8
from agegate.edge.runtime import AgeModel, make_interpreter


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def two_sizes(shipped_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("tta") / "two.tflite"
    r = run("tta", shipped_model, "--tta", "mirror", "--size", "128", "--out", out, "--json")
    assert r.exit_code == 0, r.output + repr(r.exception)
    return out


def _face(spec):
    from agegate.edge.default_model import default_model_path

    img = decode_image(default_model_path().parent / "demo" / "collins_38.jpg")
    return normalize(prepare_uint8(img, spec), spec)


def test_the_copy_is_the_same_file_with_new_views_and_no_operating_point(shipped_model, two_sizes):
    assert sha256_file(two_sizes) == sha256_file(shipped_model)
    side = json.loads(two_sizes.with_suffix(".json").read_text())
    assert (side["tta"], side["tta_sizes"], side["operating_point"], side["bundle"]) == ("mirror", [128], None, None)
    assert side["extra"]["tta_from"]["sha256"] == sha256_file(shipped_model)
    meta = read_metadata(two_sizes)
    assert (meta.input_sizes, meta.runs_per_prediction) == ((112, 128), 4)


def test_each_face_is_the_mean_of_both_sizes_and_their_mirrors(shipped_model, two_sizes):
    """The 128 px views are run by an interpreter of that size (checked against LiteRT directly), not the
    112 px one twice."""
    model = AgeModel(two_sizes)
    x = _face(model.spec)
    big = cv2.resize(x, (128, 128), interpolation=cv2.INTER_LINEAR)
    interp, _ = make_interpreter(shipped_model)
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(d["index"], [1, 128, 128, 3])
    interp.allocate_tensors()

    def at_128(v):
        interp.set_tensor(d["index"], v[None].astype(np.float32))
        interp.invoke()
        return interp.get_tensor(o["index"]).reshape(-1).astype(np.float64)

    plain = AgeModel(shipped_model)
    small = plain.raw_tensor(x)  # its own views: the face and its mirror at 112
    large = 0.5 * (at_128(big) + at_128(mirror(big)))
    assert np.abs(small - large).max() > 0.05  # the sizes answer differently, so the mean can be seen
    np.testing.assert_allclose(model.raw_tensor(x), (small + large) / 2, atol=1e-4)
    # the box's path: a face run once for its features, then aged with the other three views
    first = model.run_face(prepare_uint8(decode_image(plain.path.parent / "demo" / "collins_38.jpg"), model.spec))
    assert model.estimate_run(first).age == pytest.approx(model.meta.head.point(((small + large) / 2)[None])[0],
                                                          abs=1e-3)


def test_an_older_agegate_refuses_a_model_at_several_sizes(shipped_model, two_sizes, monkeypatch):
    """Format 2 only where a model needs it: an agegate that knows format 1 still reads the shipped model
    and refuses the two-size one instead of running it at one size against another model's point."""
    assert json.loads(shipped_model.with_suffix(".json").read_text())["format_version"] == 1
    monkeypatch.setattr(metadata_module, "FORMAT_VERSION", 1)
    read_metadata(shipped_model)
    with pytest.raises(ModelError, match="upgrade agegate"):
        read_metadata(two_sizes)


def test_tta_refuses_its_own_model_and_a_size_it_has(shipped_model, two_sizes, tmp_path):
    r = run("tta", two_sizes, "--size", "128", "--out", two_sizes)
    assert r.exit_code == 2 and "is the model itself" in r.output
    out = tmp_path / "same.tflite"
    r = run("tta", shipped_model, "--size", "112", "--out", out)
    assert r.exit_code == 1 and "other than the model's input size 112" in r.output
    assert not out.exists() and not out.with_suffix(".json").exists()
    # nor does it write over a calibrated file (the shipped model's copy) without --force: its point would go
    import shutil

    shutil.copy(shipped_model, out)
    shutil.copy(shipped_model.with_suffix(".json"), out.with_suffix(".json"))
    r = run("tta", shipped_model, "--size", "128", "--out", out)
    assert r.exit_code == 2 and "is calibrated (operating point 0.072787" in r.output
    assert json.loads(out.with_suffix(".json").read_text())["operating_point"] is not None
    r = run("tta", shipped_model, "--size", "128", "--out", out, "--force")
    assert r.exit_code == 0 and json.loads(out.with_suffix(".json").read_text())["operating_point"] is None


def test_bench_times_every_view_of_a_face(shipped_model, two_sizes, tmp_path):
    out = tmp_path / "r.json"
    r = run("bench", shipped_model, two_sizes, "--threads", "1", "--runs", "5", "--warmup", "1", "--out", out)
    assert r.exit_code == 0, r.output + repr(r.exception)
    one, two = json.loads(out.read_text())["results"]
    assert (one["invokes_per_face"], two["invokes_per_face"]) == (2, 4)
    assert one["p50_per_face_ms"] > 0 and two["p50_per_face_ms"] > 0
    assert "4 views per face" in r.output


def test_the_install_smoke_test_says_what_a_face_pays_for(two_sizes, tmp_path):
    """`device install` and `device doctor` time a face through every view; the check says how many runs."""
    import shutil

    from agegate.edge.contracts import RELEASE_META, RELEASE_MODEL
    from agegate.edge.provision import smoke_test

    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(two_sizes, release / RELEASE_MODEL)
    shutil.copy(two_sizes.with_suffix(".json"), release / RELEASE_META)
    s = smoke_test(release)
    assert (s.runs_per_face, s.views) == (4, "mirror, also at 128 px")
    assert 1 < s.age < 100 and s.p50_ms > 0
