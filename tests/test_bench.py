"""Benchmark CLI: output schema and ratios on a tiny model. No test asserts a timing."""
import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli

pytestmark = pytest.mark.slow  # trains or converts a model


def test_bench_models_schema_and_ratio(converted, tmp_path):
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(converted["float32"]), str(converted["int8"]), "--threads", "1,2",
                                 "--runs", "8", "--warmup", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(out.read_text())
    env = d["environment"]
    for k in ("cpu_model", "cores", "isa", "os", "python", "runtime", "runtime_version", "delegate",
              "agegate_version"):
        assert k in env
    assert len(d["results"]) == 4
    for row in d["results"]:
        for k in ("init_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput_per_s", "size_mb",
                  "input_type", "output_type", "ratio_vs_first", "rss_added_mb"):
            assert k in row
    assert [r_["ratio_vs_first"] for r_ in d["results"] if r_["model"].endswith("float32.tflite")] == [1.0, 1.0]
    for fmt, marker in (("json", '"results"'), ("csv", "p50_ms"), ("md", "| model |")):
        r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), "--threads", "1", "--runs", "3", "--warmup",
                                     "1", "--format", fmt])
        assert r.exit_code == 0 and marker in r.output, r.output
    r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), "--threads", "1", "--runs", "3", "--json"])
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 1, r.output
    r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), "--json", "--format", "csv"])
    assert r.exit_code == 2 and "--format csv" in r.output


def test_bench_train_times_each_backbone_and_size(tmp_path):
    """The real model and optimizer, one step each: the rows and the environment, printed and saved alike."""
    out = tmp_path / "t.json"
    r = CliRunner().invoke(cli, ["bench", "train", "--backbones", "mobilenet_v3_small,mobilenet_v2", "--sizes", "48,64",
                                 "--batch-size", "2", "--steps", "1", "--json", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(r.stdout)
    assert d == json.loads(out.read_text()) and d["kind"] == "train" and "isa" in d["environment"]
    assert [(row["backbone"], row["input_size"]) for row in d["results"]] == [
        ("mobilenet_v3_small", 48), ("mobilenet_v3_small", 64), ("mobilenet_v2", 48), ("mobilenet_v2", 64)]
    assert all(row["images_per_s"] > 0 and row["params_m"] > 0 for row in d["results"])
    assert d["results"][0]["params_m"] < d["results"][2]["params_m"]  # MobileNetV3-Small is the smaller
    assert "img/s" in r.stderr


def test_bench_counts_both_views_of_a_mirror_tta_model(converted, tmp_path):
    import shutil

    mirror = tmp_path / "mirror.tflite"
    shutil.copy(converted["int8"], mirror)
    meta = json.loads(converted["int8"].with_suffix(".json").read_text())
    mirror.with_suffix(".json").write_text(json.dumps({**meta, "tta": "mirror"}))
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), str(mirror), "--threads", "1", "--runs", "5",
                                 "--warmup", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    plain, tta = json.loads(out.read_text())["results"]
    assert (plain["invokes_per_face"], tta["invokes_per_face"]) == (1, 2)
    # per-face latency is measured (every view of a face timed together), not p50 x views
    assert plain["p50_per_face_ms"] > 0 and tta["p50_per_face_ms"] > 0
    assert "2 views per face" in r.output


def test_bench_real_input_profile_and_report(converted, small_utk, tmp_path):
    out = tmp_path / "a.json"
    r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), "--threads", "1", "--runs", "3", "--warmup", "1",
                                 "--input", f"real:{small_utk}", "--profile", "--out", str(out)])
    assert r.exit_code == 0 and "benchmark_model" in r.output
    r = CliRunner().invoke(cli, ["bench", "report", str(out), str(out), "--out", str(tmp_path / "rep.md"),
                                 "--png", str(tmp_path / "rep.png")])
    assert r.exit_code == 0
    md = (tmp_path / "rep.md").read_text()
    assert md.count("m-int8.tflite") == 2 and (tmp_path / "rep.png").stat().st_size > 1000


def test_bench_pipeline_reports_stages(shipped_model, tmp_path):
    r = CliRunner().invoke(cli, ["bench", "pipeline", "--frames", "40", "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(r.output)
    assert d["frames"] == 40 and d["fps"] > 0
    assert set(d["stages"]) == {"capture", "detect", "crop", "look", "infer", "fuse", "frame"}


def test_bench_frames_times_each_frame_with_and_without_the_second_look(shipped_model, tmp_path):
    """Every case for the box, the box with one detector pass and the landed profile; the demo buyer's face is
    small enough for the box's second look, so its frame runs one more detector pass (the cost is the JSON's)."""
    out = tmp_path / "frames.json"
    r = CliRunner().invoke(cli, ["bench", "frames", "--runs", "8", "--huge", "640", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(out.read_text())
    for name, row in d["cases"].items():
        assert set(row) == {"box", "box one pass", "landed"}, name
        assert row["box"]["faces_per_frame"] == row["box one pass"]["faces_per_frame"], name
    assert d["cases"]["one face 640x480"]["box"]["faces_per_frame"] == 1.0
    assert d["small_face_refine_cost"] > 0 and "second look costs" in r.output


def test_ensemble_probe_averages_the_models_over_the_same_faces(small_utk, tmp_path):
    """Two models that say 20 and 40 of everyone: the mean row is a model that says 30, over the faces both
    found (each through the box's detector)."""
    import numpy as np

    from agegate.benchmarks.ensemble_probe import main
    from agegate.convert.evaluate import select_records

    from .conftest import gaussian_model

    young, old = gaussian_model(tmp_path / "y.tflite", 20.0), gaussian_model(tmp_path / "o.tflite", 40.0)
    out = tmp_path / "probe.json"
    r = CliRunner().invoke(main, [str(young), str(old), "--data", str(small_utk), "--split", "test", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(out.read_text())
    ages = np.array([rec.age for rec in select_records(str(small_utk), "auto", None, "test")], float)
    assert 0.95 * len(ages) < d["n"] <= len(ages)  # a chip may have no face the detector finds
    rows = d["rows"]
    assert rows["y.tflite"]["safe_threshold"] == pytest.approx(20.0, abs=0.1)
    assert rows["o.tflite"]["safe_threshold"] == pytest.approx(40.0, abs=0.1)
    mean = rows["mean of the models"]
    assert mean["safe_threshold"] == pytest.approx(30.0, abs=0.1) and mean["asked_25plus_at_1pct_minors"] == 1.0
    # Over all the chips (the faces a detector misses change it by at most their share of 100 years)
    slack = (len(ages) - d["n"]) * 100 / len(ages) + 0.05
    assert mean["mae"] == pytest.approx(float(np.mean(np.abs(ages - 30.0))), abs=slack)
    assert "mean of the models: MAE" in r.output


def test_ensemble_probe_tail_is_what_a_point_letting_k_minors_pass_asks():
    import numpy as np

    from agegate.benchmarks.ensemble_probe import tail

    ages = np.array([10, 12, 15, 30, 40, 50, 60], float)
    risk = np.array([0.9, 0.3, 0.6, 0.8, 0.5, 0.2, 0.1])  # minors' risks, sorted: 0.3, 0.6, 0.9
    # k minors ok: the point sits just under the (k+1)-th lowest minor risk; adults at or above it are asked
    assert tail(ages, risk, (0, 1, 2, 5)) == {"0": 0.5, "1": 0.25, "2": 0.0, "5": 0.0}


def test_bias_probe_undoes_a_uniform_lean_and_reads_the_model_it_is_given(small_utk, tmp_path):
    """Estimates shrunk 20 % towards 35 are unbiased again once stretched x1.25 about 35; a model that says
    30 of everyone has a 65+ bias the probe reports per set, and its median is 30 too."""
    import numpy as np

    from agegate.benchmarks.bias_probe import main, stretch
    from agegate.convert.evaluate import select_records
    from agegate.convert.metrics import age_metrics, worst_adult_bias

    from .conftest import gaussian_model

    y = np.repeat(np.arange(1.0, 90.0), 3)
    leaned = 35 + 0.8 * (y - 35)
    band, bias = worst_adult_bias(age_metrics(y, leaned)["bands"])
    assert band == "65+" and bias < -8  # the old under-estimated most
    assert abs(worst_adult_bias(age_metrics(y, stretch(leaned, 35, 1.25))["bands"])[1]) < 1e-9

    model = gaussian_model(tmp_path / "thirty.tflite", 30.0)
    out = tmp_path / "probe.json"
    r = CliRunner().invoke(main, [str(model), "--data", str(small_utk), "--split", "test", "--centres", "35",
                                  "--factors", "1.1", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    rows = json.loads(out.read_text())["rows"]
    name = small_utk.name
    ages = np.array([rec.age for rec in select_records(str(small_utk), "auto", None, "test")], float)
    mean = rows["mean (the model's estimate)"][name]
    assert mean["worst_band"] == "65+" and mean["worst_bias"] == pytest.approx(30 - ages[ages >= 65].mean(), abs=1.5)
    assert rows["median"][name]["mae"] == pytest.approx(mean["mae"], abs=0.6)
    assert set(rows) == {"mean (the model's estimate)", "median", "mean stretched x1.1 about 35",
                         "monotone map fitted on these images (a floor)"}


def test_bias_probe_fits_a_monotone_map_that_meets_the_target_where_the_lean_differs_by_age():
    """A lean no single stretch undoes (the young aged up by 4, the old down by 10, the middle right): the
    fitted map brings every band from 18 up within the target, keeps its ends and its order, and costs MAE
    only for what it moves."""
    import numpy as np

    from agegate.benchmarks.bias_probe import MAP_KNOTS, apply_map, fit_even_map
    from agegate.convert.metrics import age_metrics, worst_adult_bias

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(18.0, 90.0), 20)
    leaned = np.where(y < 30, y + 4, np.where(y > 60, y - 10 * (y - 60) / 30, y)) + rng.normal(0, 3, len(y))
    assert abs(worst_adult_bias(age_metrics(y, leaned)["bands"])[1]) > 5
    knots = fit_even_map([(y, leaned)], target=1.0)
    assert knots[0] == MAP_KNOTS[0] and knots[-1] == MAP_KNOTS[-1] and np.all(np.diff(knots) > 0)
    mapped = age_metrics(y, apply_map(knots, leaned))
    assert abs(worst_adult_bias(mapped["bands"])[1]) <= 1.05
    assert mapped["mae"] < age_metrics(y, leaned)["mae"]


def test_grey_camera_probe_reads_each_photo_in_colour_and_in_grey(small_utk, shipped_model, tmp_path):
    """Grey is the photo's luminance in three equal channels; the probe runs the shipped model on both views of
    the same photos and reports each, with the Challenge-25 figures at the model's operating point; the grey
    view really differs (not the colour photos twice)."""
    import numpy as np

    from agegate.benchmarks.grey_camera_probe import main
    from agegate.convert.replay import monochrome as grey
    from agegate.edge.preprocess import decode_image

    rgb = decode_image(next((small_utk / "images").glob("*.jpg")))
    g = grey(rgb)
    assert g.shape == rgb.shape and np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    assert abs(float(g.mean()) - float(rgb.mean())) < 20 and not np.array_equal(g, rgb)
    out = tmp_path / "grey.json"
    r = CliRunner().invoke(main, [str(shipped_model), "--data", str(small_utk), "--split", "val", "--limit", "30",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    views = json.loads(out.read_text())["sets"][small_utk.name]
    assert set(views) == {"colour", "grey"}
    for v in views.values():
        assert v["n"] == 30 and 25 <= v["faces_found"] <= 30 and 0 < v["mae"] < 30
        assert {"minors_ok", "adults_asked", "coverage_80", "max_risk"} <= set(v)
    assert views["colour"]["mae"] != views["grey"]["mae"]


def test_uncropped_probe_places_each_photo_small_and_scores_both_photo_paths(small_utk, tmp_path):
    """Chips placed at 140 px in a 1280x960 scene: both variants find the faces; a model that says 30 of
    everyone has the MAE of |age - 30| over the faces found, whatever the path (the probe reads the model
    it is given); the scene is really there (a 140 px photo in 1280x960 is mostly scene)."""
    import numpy as np

    from agegate.benchmarks.uncropped_probe import ONE_PASS, SCENE, main, place_in_scene
    from agegate.convert.evaluate import select_records

    from .conftest import gaussian_model

    photo = np.full((200, 200, 3), 255, np.uint8)
    scene = place_in_scene(photo, 140, np.random.default_rng(0))
    assert scene.shape[:2] == SCENE and (scene == 255).all(axis=2).sum() == 140 * 140

    model = gaussian_model(tmp_path / "thirty.tflite", 30.0)
    out = tmp_path / "probe.json"
    r = CliRunner().invoke(main, [str(model), "--data", str(small_utk), "--split", "test", "--per-set", "12",
                                  "--sides", "0,140", "--refine-below", "0.3,0.5", "--tiles", "0,4", "--faceless", "3",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    result = json.loads(out.read_text())
    rows = result["rows"]
    names = {ONE_PASS, "refine below 0.3, tiles 0", "refine below 0.3, tiles 4 (shipped)", "refine below 0.5, tiles 0",
             "refine below 0.5, tiles 4"}
    assert set(rows) == {"0", "140"} and all(set(v) == names for v in rows.values())
    records = select_records(str(small_utk), "auto", None, "test")
    drawn = np.random.default_rng(0).choice(len(records), 12, replace=False)  # the probe's draw (--seed 0)
    ages = np.array([records[i].age for i in drawn], float)
    for side in rows.values():
        for variant in side.values():
            got = variant[small_utk.name]
            assert got == {**got, "found": 12, "missed": 0, "found_elsewhere": 0}
            assert got["mae"] == pytest.approx(np.abs(ages - 30).mean(), abs=0.5)
    shipped = "refine below 0.3, tiles 4 (shipped)"
    assert rows["0"][ONE_PASS][small_utk.name]["boxes_changed"] is None
    assert rows["0"][shipped][small_utk.name]["boxes_changed"] == 0  # a chip's face is large: left as it was
    assert rows["140"][shipped][small_utk.name]["boxes_changed"] >= 10  # small in the scene: detected again
    faceless = result["faceless"]
    assert faceless["scenes"] == 3 and faceless["pieces"] >= 10 and set(faceless["with_a_face"]) == names
    assert all(0 <= k <= 3 for k in faceless["with_a_face"].values())


def test_bystanders_stand_beside_the_photo_with_smaller_faces():
    """`compose` keeps the labelled photo whole and pastes each bystander clear of it, scaled so the
    bystander's face is 0.4-0.8 of the photo's (faces given as shares of each photo's longer side); a
    cluttered base scene is copied, and surrounds the photo."""
    import numpy as np

    from agegate.benchmarks.uncropped_probe import compose

    photo, other = np.full((200, 200, 3), 255, np.uint8), np.zeros((100, 50, 3), np.uint8)
    for seed in range(5):
        scene, (x0, y0, x1, y1) = compose(photo, 300, np.random.default_rng(seed), [(other, 0.25)], face_share=0.5)
        assert (x1 - x0, y1 - y0) == (300, 300) and (scene[y0:y1, x0:x1] == 255).all()
        ys, xs = np.nonzero((scene == 0).all(2))
        # the photo's face is 150 px; the bystander's face (a quarter of its longer side) 60-120 px
        assert 240 <= ys.max() - ys.min() + 1 <= 480, seed
        assert xs.max() < x0 or xs.min() >= x1 or ys.max() < y0 or ys.min() >= y1
    clutter = np.random.default_rng(9).integers(0, 255, (*scene.shape[:2], 3), dtype=np.uint8)
    kept = clutter.copy()
    scene, (x0, y0, x1, y1) = compose(photo, 300, np.random.default_rng(0), base=clutter)
    assert (clutter == kept).all() and (scene[y0:y1, x0:x1] == 255).all()  # the base is copied, not drawn on
    outside = np.ones(scene.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (scene[outside] == clutter[outside]).all()  # and it is the scene around the photo


def test_probe_with_the_photo_labelled_never_takes_a_bystander(small_utk, tmp_path, shipped_model):
    """`--labelled` gives the detector the placed photo's rectangle as the labelled face box: with two
    bystanders beside each photo every face taken lies inside the photo, and the JSON says the run was
    labelled. (That the label changes which face is taken is shown in tests/test_labelled_faces.py, where
    the other face is the larger.)"""
    from agegate.benchmarks.uncropped_probe import main

    out = tmp_path / "probe.json"
    r = CliRunner().invoke(main, [str(shipped_model), "--data", str(small_utk), "--split", "test", "--per-set", "8",
                                  "--sides", "220", "--tiles", "4", "--bystanders", "2", "--labelled",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    result = json.loads(out.read_text())
    assert result["labelled"] is True
    rows = [v for side in result["rows"].values() for variant in side.values() for v in variant.values()]
    assert rows and all(v["found_elsewhere"] == 0 and v["found"] + v["missed"] == 8 for v in rows), rows


def test_painting_out_a_face_leaves_nothing_to_detect():
    """The probe's faceless scenes are made of photos whose faces `paint_out` covers: chips in a scene are
    found before and not after (a cover that missed the face would count true faces as false ones)."""
    import numpy as np

    from agegate.benchmarks.uncropped_probe import paint_out
    from agegate.edge.detect import DetectorOptions, FaceDetector
    from agegate.edge.preprocess import decode_image

    from .conftest import UTK, pick

    detector = FaceDetector(DetectorOptions.for_photos())
    rng = np.random.default_rng(0)
    for name in pick("test", 8, seed=4):
        scene = np.full((600, 800, 3), 120, np.uint8)
        scene[200:400, 300:500] = decode_image(UTK / "images" / name)
        faces = detector.detect(scene)
        assert faces, name
        assert not detector.detect(paint_out(scene, faces, rng)), name


def test_fusion_rules_agree_on_agreeing_frames_and_differ_on_an_odd_one():
    """Frames that agree give every rule the frames' risk; one frame that looks young lifts the mixture's
    risk by its share of the window, the log pool's and the median's much less."""
    import numpy as np

    from agegate.benchmarks.fusion_probe import log_pool, rule_risks
    from agegate.edge.age_head import AgeHead, p_under

    head = AgeHead.distribution()
    adult = np.exp(-0.5 * ((head.ages - 30.0) / 4.0) ** 2)
    adult /= adult.sum()
    young = np.exp(-0.5 * ((head.ages - 15.0) / 4.0) ** 2)
    young /= young.sum()
    same = rule_risks(np.stack([adult] * 5), np.ones(5), head)
    assert max(same.values()) - min(same.values()) < 1e-9
    assert np.allclose(log_pool(np.stack([adult] * 3), np.array([1.0, 2.0, 3.0])), adult)
    odd = rule_risks(np.stack([adult] * 4 + [young]), np.ones(5), head)
    frame = float(p_under(adult, head, 25.0)[0])
    assert odd["mixture (the box)"] == pytest.approx(0.8 * frame + 0.2 * float(p_under(young, head, 25.0)[0]))
    assert odd["median"] == pytest.approx(frame)
    assert frame < odd["log-pool"] < odd["mixture (the box)"]


def test_fusion_probe_replays_once_and_chooses_each_rules_point(small_utk, tmp_path, shipped_model):
    """The probe's recorded windows give back the box's own risk for every decided buyer (it checks that
    itself), and every rule gets an operating point and its per-buyer figures on the same buyers."""
    from agegate.benchmarks.fusion_probe import main

    out = tmp_path / "fusion.json"
    r = CliRunner().invoke(main, [str(shipped_model), "--data", str(small_utk), "--split", "test", "--limit", "40",
                                  "--buyers", "6", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(out.read_text())
    assert set(d["rules"]) == {"mixture (the box)", "log-pool", "median", "mixture, equal weights"}
    n = {(v["per_buyer"]["n_minors"], v["per_buyer"]["n_adults"]) for v in d["rules"].values()}
    assert len(n) == 1 and d["buyers"] == d["replay"]["buyers"] > 6
    for v in d["rules"].values():
        assert v["operating_point"] == min(v["per_buyer_point"], d["per_image_point"])
    assert "mixture (the box)" in r.output


def test_quality_gate_probe_remakes_a_tracks_decision_as_the_box_makes_it():
    """Twelve frames of one adult, every other one soft: at limit 20 the six sharp frames decide at the
    track's end (six >= min_frames); at 60 none passes (uncertain, blurred); at 0 the decision falls at the
    tenth frame and fuses those ten."""
    import numpy as np

    from agegate.benchmarks.quality_gate_probe import JudgedFrame, remake
    from agegate.edge.age_head import AgeHead, fuse, p_under
    from agegate.edge.decision import Decision, DecisionPolicy
    from agegate.edge.pipeline import BoxOptions

    head = AgeHead.distribution()

    def dist(mu):
        p = np.exp(-0.5 * ((head.ages - mu) / 4.0) ** 2)
        return p / p.sum()

    frames = [JudgedFrame(10.0 if i % 2 else 50.0, 120.0, "", 30.0 + i, dist(30.0 + i)) for i in range(12)]
    options = BoxOptions(policy=DecisionPolicy(max_risk=0.2))
    kind, age, risk, why, seen = remake(frames, 20.0, options, head)
    sharp = frames[0::2]
    assert kind == Decision.OK and why == "" and age == np.median([f.age for f in sharp]) and seen == 12
    want = fuse(np.stack([f.probs for f in sharp]), np.array([f.weight() for f in sharp]))
    assert risk == pytest.approx(float(p_under(want, head, 25.0)[0]))
    assert remake(frames, 60.0, options, head)[::3] == (Decision.UNCERTAIN, "blurred")
    kind, age, _, _, seen = remake(frames, 0.0, options, head)
    assert kind == Decision.OK and age == np.median([f.age for f in frames[:10]]) and seen == 10
    small = [JudgedFrame(50.0, 30.0, "face_too_small", None, None)] * 12
    assert remake(small, 0.0, options, head)[::3] == (Decision.UNCERTAIN, "face_too_small")


PROBE_ARGS = ("--split", "test", "--limit", "40", "--buyers", "6")


def _probe(main, model, data, out: Path, *extra) -> dict:
    """A box-side probe's result on the small set's test split (40 images, every minor and 6 others as buyers)."""
    r = CliRunner().invoke(main, [str(model), "--data", str(data), *PROBE_ARGS, *extra, "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def box_figures(small_utk, shipped_model, tmp_path_factory) -> dict:
    """The fusion probe on those buyers: the box's own per-buyer figures (its mixture, replayed as the box is)."""
    from agegate.benchmarks.fusion_probe import main as fusion

    return _probe(fusion, shipped_model, small_utk, tmp_path_factory.mktemp("fusion") / "f.json")


def test_quality_gate_probe_at_the_box_limit_gives_the_box_figures(small_utk, tmp_path, shipped_model, box_figures):
    """Re-made at the box's own blur limit, the decisions give what the box itself gives on the same buyers
    (the fusion probe replays them with the gate on): the re-making is the box's rule, not an approximation."""
    from agegate.benchmarks.quality_gate_probe import main as gate
    from agegate.edge.pipeline import BoxOptions

    own = f"{BoxOptions().min_sharpness:g}"
    g = _probe(gate, shipped_model, small_utk, tmp_path / "g.json", "--limits", f"0,{own},30")
    box = box_figures["rules"]["mixture (the box)"]
    assert g["box_min_sharpness"] == box_figures["box_min_sharpness"] == float(own)
    assert g["limits"][own]["operating_point"] == box["operating_point"]
    assert g["limits"][own]["per_buyer"] == box["per_buyer"]
    assert g["limits"]["30"]["uncertain_blurred"] >= g["limits"]["0"]["uncertain_blurred"] == 0
    assert sum(v["frames"] for v in g["frames_by_sharpness"].values()) > 10 * g["buyers"] // 2


def test_evidence_probe_at_the_box_settings_gives_the_box_figures(small_utk, tmp_path, shipped_model, box_figures):
    """Re-made with the box's own decide_after:window, the decisions give what the box gives on the same buyers
    (the fusion probe replays them with the box as it is); fewer frames decide sooner."""
    from agegate.benchmarks.evidence_probe import main as evidence, parse_pairs
    from agegate.edge.pipeline import BoxOptions

    box = BoxOptions()
    own = f"{box.decide_after}:{box.window}"
    e = _probe(evidence, shipped_model, small_utk, tmp_path / "e.json", "--pairs", f"5:15,{own}")
    mine, theirs = e["pairs"][own], box_figures["rules"]["mixture (the box)"]
    assert e["box"] == own and mine["operating_point"] == theirs["operating_point"]
    assert mine["per_buyer"] == theirs["per_buyer"]
    assert 5 <= e["pairs"]["5:15"]["frames_to_decision_p50"] < mine["frames_to_decision_p50"]
    assert mine["frames_to_decision_p50"] >= box.decide_after
    assert parse_pairs("5:15,20:20") == [(5, 15), (20, 20)]
    for bad in ("10", "a:b", "3:15", "16:15"):
        with pytest.raises(click.BadParameter):
            parse_pairs(bad)
    # The policy's guards, one at a time at the box's pair: its own values give its figures again, and a
    # looser guard never makes more buyers uncertain than a tighter one.
    own_frames, own_spread = f"{box.policy.min_frames:g}", f"{box.policy.max_spread:g}"
    assert (e["box_min_frames"], e["box_max_spread"]) == (box.policy.min_frames, box.policy.max_spread)
    for group, key in (("min_frames", own_frames), ("max_spread", own_spread)):
        assert e[group][key]["per_buyer"] == theirs["per_buyer"], group
        assert e[group][key]["operating_point"] == theirs["operating_point"], group
    spreads = e["max_spread"]
    assert spreads["6"]["uncertain"] >= spreads[own_spread]["uncertain"] >= spreads["100"]["uncertain"]
    assert e["min_frames"]["8"]["uncertain"] >= e["min_frames"]["3"]["uncertain"]


def test_evidence_probe_checks_policy_values_as_box_toml_does():
    from agegate.benchmarks.evidence_probe import parse_policy

    assert parse_policy("3,5,8", "min_frames") == [3.0, 5.0, 8.0]
    assert parse_policy("6,12.5,100", "max_spread") == [6.0, 12.5, 100.0]
    for text, key, says in (("11", "min_frames", "decide_after (10) must be at least"),
                            ("2.5", "min_frames", "give numbers"), ("0.1", "max_spread", "outside 0.5..100"),
                            ("x", "max_spread", "give numbers")):
        with pytest.raises(click.BadParameter, match=re.escape(says)):
            parse_policy(text, key)



def test_false_faces_counts_faces_on_empty_till_frames(tmp_path):
    """Empty camera frames (photos with their faces painted out): the box's profile reports few faces on
    them and a detector that keeps anything scored 0.05 reports faces on most, so the count tells them apart;
    the frames are the camera's 640x480 and every variant is recorded with its settings."""
    import json

    from click.testing import CliRunner

    from agegate.benchmarks.false_faces import BOX, main

    from .conftest import UTK

    out = tmp_path / "ff.json"
    r = CliRunner().invoke(main, ["--data", str(UTK), "--split", "test", "--per-set", "80", "--scenes", "12",
                                  "--small-face-score", "0.5", "--min-score", "0.05", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    result = json.loads(out.read_text())
    hits, faces = result["with_a_face"], result["faces"]
    assert result["frame"] == [640, 480] and result["pieces"] > 20
    assert set(hits) == {BOX, "small_face_score 0.5", "min_score 0.05"} == set(result["variants"])
    assert result["variants"]["min_score 0.05"]["min_score"] == 0.05
    assert hits[BOX] <= 2 and hits["min_score 0.05"] >= 9 and faces["min_score 0.05"] >= hits["min_score 0.05"]
    r = CliRunner().invoke(main, ["--data", str(UTK), "--min-score", "0.01"])
    assert r.exit_code == 2 and "every score must lie in 0.05-0.99" in r.output


def test_decision_probe_rereads_a_distribution_at_another_temperature_and_quantile():
    import numpy as np

    from agegate.benchmarks.decision_probe import at_temperature, quantile_age, readings
    from agegate.edge.age_head import AgeHead, p_under

    head = AgeHead.distribution(temperature=0.8)
    raw = np.random.default_rng(0).normal(0, 3, (4, head.n_bins))
    probs = head.probabilities(raw)
    assert np.allclose(at_temperature(probs, head, 0.8), probs)
    assert np.allclose(at_temperature(probs, head, 2.0), head.probabilities(raw, 2.0))
    assert not np.allclose(at_temperature(probs, head, 2.0), probs)
    point = np.zeros((1, head.n_bins))
    point[0, [10, 30]] = 0.25, 0.75  # a quarter of the mass at 10, the rest at 30
    assert quantile_age(point, head, 0.2)[0] == 10 and quantile_age(point, head, 0.3)[0] == 30
    first, *others = readings(probs, head).items()
    assert first[0].endswith("(the box)") and np.allclose(first[1], p_under(probs, head, 25))
    assert len(others) == len(set(name for name, _ in others))  # the box's reading is not repeated


def test_decision_probe_lists_the_minors_its_operating_point_lets_pass(small_utk, tmp_path):
    """A model that says 30 of everyone: P(under 25) is one small number for every face, so an operating point
    above it lets every minor pass and asks no adult, and the probe lists each minor with the estimate."""
    import numpy as np

    from agegate.benchmarks.decision_probe import main
    from agegate.edge.challenge25 import OperatingPoint
    from agegate.edge.metadata import read_metadata, write_metadata

    from .conftest import gaussian_model

    model = gaussian_model(tmp_path / "thirty.tflite", 30.0)
    meta = read_metadata(model)
    meta.operating_point = OperatingPoint(0.5)
    write_metadata(model, meta)
    out = tmp_path / "probe.json"
    r = CliRunner().invoke(main, [str(model), "--data", str(small_utk), "--split", "test", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(out.read_text())
    test = d["splits"]["test"]
    assert test["minors"] > 0 and test["minors_ok"] == test["minors"] == len(test["minors_passing"])
    assert test["asked_25plus_share"] == 0.0
    assert all(m["age"] < 18 and m["estimate"] == pytest.approx(30, abs=0.5) for m in test["minors_passing"])
    ages = [m["age"] for m in test["minors_passing"]]
    assert ages == sorted(ages)
    assert d["readings"]["split"] == "test" and "mean (negated)" in d["readings"]["rows"]
    assert "minors ok" in r.output and np.isfinite(test["mae"])


def test_band_count_probe_finds_the_shares_its_confusions_explain(tmp_path):
    """The correction the probe measures (EM on P(counted band | true band)) must work where its assumption holds,
    so that its failure across our data sets (benchmarks/results/band-count/) is the data's, not the code's."""
    import numpy as np

    from agegate.benchmarks.band_count_probe import adjusted_shares, confusion, main

    rng = np.random.default_rng(0)
    true = rng.integers(0, 8, 20000)
    counted = np.where(rng.random(true.size) < 0.7, true, np.clip(true + rng.choice([-1, 1], true.size), 0, 7))
    c = confusion(true, counted)
    shares = np.array([0.3, 0.1, 0.1, 0.2, 0.1, 0.1, 0.05, 0.05])
    assert np.allclose(adjusted_shares(c @ shares * 10_000, c), shares, atol=0.005)
    # the command, on eval --predictions files (a skipped row is left out)
    pred = tmp_path / "set-val.csv"
    rows = [(a, a + 8) for a in (10, 20, 30, 40, 50, 60, 70, 80)] * 3
    pred.write_text("file,age,predicted,skipped\n" + "".join(f"x.jpg,{a},{p},\n" for a, p in rows)
                    + "y.jpg,30,,no face\n")
    out = tmp_path / "probe.json"
    r = CliRunner().invoke(main, ["--fit", str(pred), "--apply", str(pred), "--out", str(out)])
    assert r.exit_code == 0, r.output
    row = json.loads(out.read_text())["rows"][0]
    assert row["images"] == 24 and row["counted"]["total_variation"] == 0.125  # everyone counted 8 years older
    assert row["adjusted"]["total_variation"] < 0.06  # fitted on these very images: most of it undone


def test_eye_light_probe_counts_frames_and_buyers_under_each_line():
    """The probe's summary, on which the box's eye line was chosen: a frame is under a line when its eye light
    is, a buyer when most of their frames are; buyers with no frame found are not counted."""
    from agegate.benchmarks.eye_light_probe import summarize

    r = summarize([[0.1, 0.5, 0.6], [0.2, 0.25, 0.9], []])
    assert r["frames"] == 6 and r["buyers"] == 2
    assert r["frames_under"]["0.3"] == 0.5 and r["frames_under"]["0.5"] == 0.5  # 0.5 itself is not under
    assert r["buyers_mostly_under"]["0.3"] == 0.5 and r["buyers_mostly_under"]["0.2"] == 0.0
    assert r["buyers_mostly_under"]["0.5"] == 0.5 and r["frames_under"]["0.2"] == round(1 / 6, 4)
    assert r["percentiles"]["p50"] == 0.375


def test_eye_light_photos_counts_seen_sunglasses_apart(tmp_path):
    """The photo probe's summary: photos a person listed as wearing sunglasses are counted apart (caught when
    under the box's line), the bare ones per labelled group under each line, and the darkest listed first."""
    from agegate.benchmarks.eye_light_photos import read_seen, relative, summarize
    from agegate.edge.errors import UsageError
    from agegate.edge.tracking import MIN_EYE_LIGHT

    listed = tmp_path / "seen.txt"
    listed.write_text("# seen by a person\nutkface/images/a.jpg  dark\n\nutkface/images/b.jpg tint\naaf/gone.jpg x\n")
    seen = read_seen(listed)
    assert seen == {"utkface/images/a.jpg", "utkface/images/b.jpg", "aaf/gone.jpg"} and read_seen(None) == set()
    listed.write_text("utkface/images/a.jpg\n")  # the mislabelled-images lists' format: what was seen is required
    with pytest.raises(UsageError, match=r"seen.txt:1: give the image's path, then what was seen \(e.g."):
        read_seen(listed)
    assert relative("../shared/datasets/utkface/images/a.jpg", "../shared/datasets/utkface") == "utkface/images/a.jpg"
    row = lambda path, light, groups=("utkface race White",): {  # noqa: E731
        "path": path, "source": "utkface", "age": 30.0, "split": "test", "groups": list(groups), "light": light}
    rows = [row("utkface/images/a.jpg", MIN_EYE_LIGHT - 0.1), row("utkface/images/b.jpg", MIN_EYE_LIGHT + 0.1),
            row("utkface/images/c.jpg", 0.28, ("utkface race Indian",)), row("utkface/images/d.jpg", 0.7)]
    r = summarize(rows, seen, lowest=2)
    assert r["sunglasses_seen"] == {"listed": 3, "found": 2, "caught": 1, "photos": [
        {"path": "utkface/images/a.jpg", "age": 30.0, "light": MIN_EYE_LIGHT - 0.1},
        {"path": "utkface/images/b.jpg", "age": 30.0, "light": MIN_EYE_LIGHT + 0.1}]}
    assert r["bare"] == {"photos": 2, "under_0.2": 0, "under_0.25": 0, "under_0.3": 1, "under_0.35": 1,
                         "under_0.4": 1, "under_0.45": 1, "under_0.5": 1}
    assert r["bare_by_group"]["utkface race Indian"]["under_0.3"] == 1
    assert r["bare_by_group"]["utkface race White"]["photos"] == 1
    assert [x["path"] for x in r["lowest"]] == ["utkface/images/a.jpg", "utkface/images/c.jpg"]
    assert r["lowest"][0]["sunglasses_seen"] and not r["lowest"][1]["sunglasses_seen"]


def test_turned_faces_bins_photos_and_buyers_by_how_far_they_are_turned():
    """The turned-faces probe: photos go into |turn| bins (an edge belongs to the bin above it), each bin's MAE is
    also given at all photos' age mix (so a bin of children is not judged against one of adults), and a replay's
    buyers are sorted by their photo's turn, with undecided buyers counted as asked and minors passed listed."""
    from agegate.benchmarks.turned_faces import EDGES, bin_labels, per_buyer, photo_key, summarize
    from agegate.edge.challenge25 import BLOCKED_RISK

    assert bin_labels() == ["0-0.1", "0.1-0.2", "0.2-0.3", "0.3+"] and EDGES == (0.1, 0.2, 0.3)
    row = lambda path, age, est, turn, risk: {  # noqa: E731
        "path": path, "age": age, "estimate": est, "turn": turn, "risk": risk, "in_80": True, "width_80": 10.0}
    rows = [row("s/a.jpg", 30.0, 32.0, 0.02, 0.01), row("s/b.jpg", 10.0, 11.0, -0.05, 0.9),
            row("s/c.jpg", 30.0, 36.0, -0.35, 0.5), row("s/d.jpg", 15.0, 26.0, 0.3, 0.05)]
    r = summarize(rows, max_risk=0.1, most=2)
    front, turned = r["bins"][0], r["bins"][3]
    assert front["photos"] == 2 and front["mae"] == 1.5 and front["minors_ok"] == 0 and front["adults_asked"] == 0
    assert r["bins"][2]["photos"] == 0 and turned["photos"] == 2  # 0.3 itself is in 0.3+
    assert turned["mae"] == 8.5 and turned["bias"] == 8.5 and turned["minors_ok"] == 1 and turned["adults_asked"] == 1
    # at the age mix (half 30, half a minor: the 0-12 and 13-17 bands count a quarter each) the bins compare
    assert front["age_mix_mae"] == round((0.5 * 2 + 0.25 * 1) / 0.75, 3) and front["bands_missing"] == ["13-17"]
    assert [x["path"] for x in r["most_turned"]] == ["s/c.jpg", "s/d.jpg"]
    assert photo_key("../shared/datasets/s/c.jpg", {"s/c.jpg"}) == "s/c.jpg"
    assert photo_key("x/y.jpg", {"s/c.jpg"}) is None
    replay = {"split": "val", "buyer_risks": [[30.0, 0.5], [15.0, 0.05], [16.0, BLOCKED_RISK], [40.0, 0.01]],
              "buyer_paths": ["../d/s/c.jpg", "../d/s/d.jpg", "../d/s/b.jpg", "../d/s/gone.jpg"]}
    b = per_buyer(replay, {x["path"]: x["turn"] for x in rows}, point=0.1)
    assert b["buyers"] == 4 and b["no_turn"] == 1
    assert b["bins"][0] == {"turn": "0-0.1", "buyers": 1, "undecided": 1, "adults": 0, "adults_asked": 0,
                            "minors": 1, "minors_ok": 0}
    assert b["bins"][3] == {"turn": "0.3+", "buyers": 2, "undecided": 0, "adults": 1, "adults_asked": 1,
                             "minors": 1, "minors_ok": 1}
    assert b["minors_passed"] == [{"path": "s/d.jpg", "age": 15.0, "risk": 0.05, "turn": 0.3}]
    # the box's own reading of each buyer, where the replay recorded it, in place of the photo's
    with pytest.raises(ValueError, match="no buyer_turns"):
        per_buyer(replay, {}, point=0.1, seen_by="box")
    box = per_buyer(replay | {"buyer_turns": [0.05, -0.25, None, 0.4]}, {}, point=0.1, seen_by="box")
    assert box["turn_seen_by"] == "box" and box["no_turn"] == 1
    assert [b["buyers"] for b in box["bins"]] == [1, 0, 1, 1] and box["bins"][2]["minors_ok"] == 1
    assert box["minors_passed"][0]["turn"] == -0.25


def test_bench_report_says_which_planted_camera_problems_the_fleet_report_found():
    """The summary's fleet row names each kind of planted problem and how many were found: uncertain jumps, and
    (in runs since the turn column) cameras that see buyers turned; a run from before the column has jumps only,
    and a miss says so."""
    from agegate.benchmarks.report import markdown

    def run(report: dict) -> dict:
        return {"kind": "fleet", "_file": "f.json", "boxes": 8, "days": 10, "rows": 100, "files": 80,
                "environment": {}, "export": {"rows_per_s": 1000},
                "report": {"seconds": 1.0, "rows_per_s": 100, "peak_rss_mb": 50, **report}}

    now = run({"jumped_boxes_planted": ["a"], "jumped_boxes_found": ["a"],
               "turned_boxes_planted": ["b", "c"], "turned_boxes_found": ["b"]})
    before = run({"jumped_boxes_planted": ["a"], "jumped_boxes_found": ["a"]})
    text = markdown([now, before])
    assert "| jumps 1 of 1, turned 1 of 2 (mismatch) | f.json |" in text
    assert "| jumps 1 of 1 | f.json |" in text


def test_bench_report_chart_draws_each_run_apart():
    """`bench report --png` set every file's bars on one axis: a Xeon's beside an EPYC's (timings compare only
    within one run) and a 1 ms model beside an 81 ms one, the small ones flat. Now a panel per file, named by its
    machine, labelled with the run's own ratios, on a log scale where its bars span more than 20x; files with no
    model latency are refused for --png."""
    import matplotlib.pyplot as plt

    from agegate.benchmarks.report import draw_chart, load_results

    res = Path(__file__).parents[1] / "benchmarks" / "results"
    runs = load_results([str(res / "default-v2-latency-epyc.json"), str(res / "resnet50-vs-shipped.json"),
                         str(res / "fleet-1000x90.json")])
    fig = draw_chart(runs)
    epyc, xeon = fig.axes
    assert len(fig.axes) == 2 and "AMD EPYC" in epyc.get_title() and "Xeon" in xeon.get_title()
    assert (len(epyc.patches), len(xeon.patches)) == (2, 10)
    assert epyc.get_xscale() == "linear" and xeon.get_xscale() == "log"
    assert any(t.get_text() == " 0.9 ms (52.899x)" for t in xeon.texts)
    plt.close(fig)
    r = CliRunner().invoke(cli, ["bench", "report", str(res / "fleet-1000x90.json"), "--out", "/dev/null",
                                 "--png", "/dev/null"])
    assert r.exit_code != 0 and "none of these files is an `agegate bench` model result" in r.output
