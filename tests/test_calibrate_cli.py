"""`agegate calibrate` end to end on a copy of the shipped model and a small labelled set: the temperature,
the operating point, and the replay behind the per-buyer target, which takes every minor of the split."""
import json

from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.pipeline import BoxOptions

from .conftest import copy_model, labelled_chips, pick

CHILDREN = pick("val", 5, seed=7, lo=5, hi=15)
ADULTS = pick("val", 6, seed=8, lo=30, hi=60)


def test_calibrate_replays_every_minor_and_a_sample_of_the_others(tmp_path, shipped_model):
    labels, model = labelled_chips(tmp_path / "set", CHILDREN + ADULTS), copy_model(shipped_model, tmp_path / "m.tflite")
    png = tmp_path / "curve.png"
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--buyers", "2", "--allow-unshown",
                                 "--json", "--png", str(png)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["replay"]["buyers"] == 5 + 2 and out["replay"]["minors"] == 5  # all 5 children, 2 of 6 adults
    per_buyer = out["operating_point"]["measured"]["per_buyer"]
    assert per_buyer["n_minors"] == 5 and per_buyer["target_shown"] is False  # 5 minors cannot show 0.5 %
    assert out["operating_point"]["measured"]["per_image"]["target_shown"] is False
    line = out["buyers_at_the_line"]  # every minor buyer passed and the next 5: here all 5 children
    assert sorted(m["path"] for m in line) == sorted(str(labels.parent / n) for n in CHILDREN)
    assert [m["risk"] for m in line] == sorted(m["risk"] for m in line) and "buyer_paths" not in out["replay"]
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["operating_point"]["max_risk"] == out["operating_point"]["max_risk"] and png.exists()
    assert meta["operating_point"]["box_rules"] == BoxOptions().decision_rules()  # the replay's box
    assert set(out["point_spread"]) == {"per_image", "per_buyer"}  # where other draws of these buyers put it
    assert len(out["point_spread"]["per_buyer"]["point"]) == 3
    text = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--buyers", "0", "--allow-unshown"])
    assert text.exit_code == 0 and "operating point: ID check when P(under 25) >" in text.output
    assert "per image, on other draws of as many minors and adults (bootstrap, 5-95 %): point" in text.output
    assert "per buyer" not in text.output and "minor buyers at the line" not in text.output  # per image only
    assert json.loads(model.with_suffix(".json").read_text())["operating_point"]["box_rules"] is None


def test_the_point_records_the_split_each_set_gave(tmp_path, shipped_model):
    """A set without splits is taken whole: the point said it was chosen on `[val]` (or `[test]`, with the warning
    that the test figures are spoilt) of a set that has neither. A set's real test split gets the warning."""
    from .conftest import build_utk_subset

    labels, model = labelled_chips(tmp_path / "store", CHILDREN + ADULTS), copy_model(shipped_model, tmp_path / "m.tflite")
    args = ["calibrate", str(model), "--buyers", "0", "--allow-unshown", "--json"]
    r = CliRunner().invoke(cli, [*args, "--data", str(labels), "--split", "test"])
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    point = json.loads(model.with_suffix(".json").read_text())["operating_point"]
    assert point["chosen_on"] == "store [all (the set has no split)]"
    utk = build_utk_subset(tmp_path / "utk", {"val": 8, "test": 4})
    r = CliRunner().invoke(cli, [*args, "--data", str(utk), "--data", str(labels)])
    assert r.exit_code == 0, r.output
    point = json.loads(model.with_suffix(".json").read_text())["operating_point"]
    assert point["chosen_on"] == "utk [val], store [all (the set has no split)]"
    r = CliRunner().invoke(cli, [*args[:-1], "--data", str(utk), "--split", "test"])
    assert r.exit_code == 0 and "warning: choosing the operating point on the test split" in r.output


def calibrate_json(tmp_path, shipped_model, *args: str) -> tuple[dict, object, object]:
    """`agegate calibrate ... --allow-unshown --json` on a copy of the shipped model and CHILDREN + ADULTS: (its
    output, the labels, the model copy)."""
    labels, model = labelled_chips(tmp_path / "set", CHILDREN + ADULTS), copy_model(shipped_model, tmp_path / "m.tflite")
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), *args, "--allow-unshown", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output), labels, model


def test_calibrate_draws_replays_the_same_buyers_again_and_records_how_many(tmp_path, shipped_model):
    out, labels, model = calibrate_json(tmp_path, shipped_model, "--buyers", "1", "--draws", "2")
    assert out["operating_point"]["measured"]["per_buyer"]["draws"] == 2
    assert [d["buyers"] for d in out["more_replays"]] == [out["replay"]["buyers"]] == [5 + 1]
    assert all(len(m["risks"]) == 2 and 0 <= m["passed_draws"] <= 2 for m in out["buyers_at_the_line"])
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--draws", "0"])
    assert r.exit_code == 2 and "--draws" in r.output


STORE_BOX = """[source]
uri = "photos"
[model]
path = "m.tflite"
[quality]
min_eye_light = 0.5
[decision]
min_frames = 4
"""


def test_calibrate_chooses_the_point_for_the_box_a_store_configured(tmp_path, shipped_model):
    """A store that sets its own decision settings (README: tints, `quality.min_eye_light = 0.5`, "and recalibrate")
    calibrates for them with --config: the replay's box decides as that box.toml says, on camera frames though its
    source is a folder, and the point records those settings, so `device doctor` on that box has nothing to flag."""
    from agegate.edge.challenge25 import rules_differ
    from agegate.edge.config import camera_box, load_config

    toml = tmp_path / "box.toml"
    toml.write_text(STORE_BOX)
    _, _, model = calibrate_json(tmp_path, shipped_model, "--buyers", "1", "--config", str(toml))
    rules = json.loads(model.with_suffix(".json").read_text())["operating_point"]["box_rules"]
    assert rules["min_eye_light"] == 0.5 and rules["min_frames"] == 4
    assert rules_differ(rules, camera_box(load_config(toml), 2).decision_rules()) == []
    assert rules["refine_below"] == BoxOptions().decision_rules()["refine_below"] > 0  # the camera's profile
    toml.write_text(STORE_BOX.replace("0.5", "7"))  # out of range: refused before any work, naming the key
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(tmp_path / "set" / "labels.csv"),
                                 "--config", str(toml)])
    assert r.exit_code != 0 and "quality.min_eye_light" in r.output


def test_calibrate_leaves_out_the_images_a_person_found_mislabelled(tmp_path, shipped_model):
    labels, model = labelled_chips(tmp_path / "set", CHILDREN + ADULTS), copy_model(shipped_model, tmp_path / "m.tflite")
    listing = tmp_path / "wrong.txt"
    listing.write_text(f"set/{CHILDREN[0]}  checked: not a child\n")
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--buyers", "1",
                                 "--exclude", str(listing), "--json", "--allow-unshown"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["replay"]["minors"] == 4 and out["operating_point"]["measured"]["per_image"]["n_minors"] == 4
    assert json.loads(model.with_suffix(".json").read_text())["operating_point"]["excluded"] == [
        {"path": f"set/{CHILDREN[0]}", "reason": "checked: not a child"}]
    listing.write_text("set/no-such.jpg  typo\n")
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--exclude", str(listing)])
    assert r.exit_code != 0 and "'set/no-such.jpg' names no image of the calibration split" in r.output


def test_calibrate_replays_the_same_images_it_evaluates(tmp_path, shipped_model):
    """--limit is a quick look at the whole of it: the replay takes the evaluated images, not the full split."""
    out, _, _ = calibrate_json(tmp_path, shipped_model, "--limit", "6", "--buyers", "100")
    per_image = out["operating_point"]["measured"]["per_image"]
    assert out["replay"]["buyers"] == 6 and out["replay"]["minors"] == per_image["n_minors"]


def test_calibrate_writes_no_point_that_its_minors_cannot_show(tmp_path, shipped_model):
    """Five minors cannot show 1 % per image (230 can, none passing) nor 0.5 % per buyer (460): such a point
    once replaced the shipped one in the sidecar (6 UTKFace minors set P(under 25) > 0.998, which lets most
    20-year-olds buy). It is refused before any work, the sidecar unchanged; --allow-unshown writes it, marked."""
    labels, model = labelled_chips(tmp_path / "set", CHILDREN + ADULTS), copy_model(shipped_model, tmp_path / "m.tflite")
    before = model.with_suffix(".json").read_bytes()
    for buyers in ("0", "800"):
        r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--buyers", buyers])
        assert r.exit_code == 2 and "5 minor(s) in" in r.output and "it takes 230 or more" in r.output, r.output
        assert model.with_suffix(".json").read_bytes() == before
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--buyers", "0",
                                 "--max-minors-ok", "0.5", "--allow-looser", "--json"])  # 5 can show 50 %
    assert r.exit_code == 0 and json.loads(r.output)["operating_point"]["measured"]["per_image"]["target_shown"]


def test_calibrate_refuses_a_model_inside_an_installed_release(tmp_path, shipped_model):
    """Calibrating /opt/agegate/current/model.tflite rewrote its sidecar, which the signed manifest hashes: the
    live release then read as damaged. A model with a manifest beside it is refused, nothing written."""
    release = tmp_path / "releases" / "1.0"
    release.mkdir(parents=True)
    model = copy_model(shipped_model, release / "model.tflite")
    (release / "manifest.json").write_text("{}")
    before = model.with_suffix(".json").read_bytes()
    labels = labelled_chips(tmp_path / "set", CHILDREN + ADULTS)
    r = CliRunner().invoke(cli, ["calibrate", str(model), "--data", str(labels), "--allow-unshown"])
    assert r.exit_code == 2 and "part of a signed release" in r.output and "copy the model" in r.output
    assert model.with_suffix(".json").read_bytes() == before
