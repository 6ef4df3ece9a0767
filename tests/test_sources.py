"""Training on several data sets through the box's crop, and judging across data sets."""
import csv
import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli

from .conftest import UTK, build_utk_subset

pytestmark = pytest.mark.slow  # trains or converts a model

AAF = UTK.parent / "aaf"


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """A UTKFace subset (its own split) and an AAF subset given as a plain CSV with no split, plus
    one photo without a face: the run must make a split for it and list the faceless photo."""
    root = tmp_path_factory.mktemp("two_sets")
    utk = build_utk_subset(root / "utk", {"train": 120, "val": 40, "test": 40})
    rows = [r for r in csv.DictReader(open(AAF / "labels.csv")) if r["split"] == "train"]
    rng = np.random.default_rng(0)
    aaf = root / "aaf"
    (aaf / "images").mkdir(parents=True)
    with open(aaf / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "gender"])
        for i in sorted(rng.permutation(len(rows))[:150]):
            shutil.copy(AAF / rows[i]["path"], aaf / rows[i]["path"])
            w.writerow([rows[i]["path"], rows[i]["age"], rows[i]["gender"]])
        cv2.imwrite(str(aaf / "images" / "wall.jpg"), np.full((160, 160, 3), 180, np.uint8))
        w.writerow(["images/wall.jpg", "30", "female"])
    return utk, aaf


@pytest.fixture(scope="module")
def box_run(two_sets, tmp_path_factory):
    utk, aaf = two_sets
    out = tmp_path_factory.mktemp("runs") / "box"
    cache = out.parent / "cache"
    names = [r["file_name"] for r in csv.DictReader(open(utk / "split.csv")) if r["split"] == "train"][:2]
    lists = []  # two UTKFace training chips, as two looks of a person name them: one list each
    for k, n in enumerate(names):
        lists.append(out.parent / f"label-errors-train-{k}.txt")
        lists[-1].write_text(f"# checked by a person\nutk/images/{n}  an adult labelled {n.split('_')[0]}\n")
    args = ["train", "--data", str(utk), "--data", str(aaf), "--data-weight", "1", "--data-weight", "2",
            "--crop", "box", "--augment", "till", "--age-prior", "balanced", "--backbone", "mobilenet_v3_small",
            "--weights", "none", "--input-size", "48", "--epochs", "1", "--batch-size", "32",
            "--cache-dir", str(cache), "--exclude", str(lists[0]), "--exclude", str(lists[1]), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out, cache, res.output


def test_both_sources_recorded_with_split_and_faceless_photos(box_run, two_sets):
    out, cache, output = box_run
    meta = json.loads((out / "model.json").read_text())
    assert meta["preprocess"]["face_crop"] == "box"
    utk, aaf = meta["extra"]["sources"]
    assert utk["split"] == "the data set's own" and utk["split_sizes"] == {"train": 120, "val": 40}
    assert aaf["split"].startswith("made by this run") and aaf["weight"] == 2.0
    assert aaf["split_sizes"]["train"] > 100 and aaf["split_sizes"]["val"] > 5
    made = out / aaf["split"].rsplit(": ", 1)[1]
    assert made.exists() and "wall.jpg" in made.read_text()
    assert len(utk["fingerprint"]) == 16 and utk["fingerprint"] != aaf["fingerprint"]
    # the faceless photo is listed, unless the made split held it out as test (then training never saw it)
    wall = str(two_sets[1] / "images" / "wall.jpg")
    listed = [p for s in (utk, aaf) for p in s["no_face"]]
    in_test = any(line.startswith("images/wall.jpg,test") for line in made.read_text().splitlines())
    assert (wall in listed) != in_test
    assert "without a face" in output
    assert sorted(p.name.split("-")[1] for p in cache.glob("crops-*.npz")) == ["train", "val"]
    # the two images a person found mislabelled were left out of training, and the run says which and why
    gone = meta["extra"]["excluded_as_mislabelled"]
    assert len(gone) == 2 and all(g["path"].startswith("utk/images/") and "adult" in g["reason"] for g in gone)
    assert output.count("left out as mislabelled") == 2 and output.count(": 1 training images") == 2
    kept = 120 + aaf["split_sizes"]["train"] - 2
    assert kept - len(listed) <= meta["extra"]["split_sizes"]["train"] <= kept


def test_an_exclusion_that_names_no_training_image_stops_the_run_before_decoding(two_sets, tmp_path):
    utk, _ = two_sets
    val = next(r["file_name"] for r in csv.DictReader(open(utk / "split.csv")) if r["split"] == "val")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"utk/images/{val}  a val image: not the training split's\n")
    res = CliRunner().invoke(cli, ["train", "--data", str(utk), "--backbone", "mobilenet_v3_small", "--weights",
                                   "none", "--input-size", "48", "--epochs", "1", "--exclude", str(wrong),
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code != 0 and "names no image of the training split" in res.output, res.output
    assert not (tmp_path / "run" / "model.keras").exists()
    train = next(r["file_name"] for r in csv.DictReader(open(utk / "split.csv")) if r["split"] == "train")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(f"utk/images/{train}  an adult labelled 1\n")
    second.write_text(f"images/{train}  found again\n")  # the same image, by a shorter tail
    res = CliRunner().invoke(cli, ["train", "--data", str(utk), "--backbone", "mobilenet_v3_small", "--weights",
                                   "none", "--input-size", "48", "--epochs", "1", "--exclude", str(first),
                                   "--exclude", str(second), "--out", str(tmp_path / "run2")])
    assert res.exit_code != 0 and "in an earlier --exclude list too" in res.output, res.output
    assert not (tmp_path / "run2" / "model.keras").exists()


def test_cached_crops_are_reused(box_run, two_sets):
    from agegate.train.crops import crop_records
    from agegate.train.datasets import read_dataset
    from agegate.edge.preprocess import PreprocessSpec

    out, cache, _ = box_run
    before = {p: p.stat().st_mtime_ns for p in cache.glob("crops-*.npz")}
    spec = PreprocessSpec(input_size=48, face_crop="box")
    recs = read_dataset(two_sets[0]).split("val")
    res = crop_records(recs, spec, "val", cache / "other")
    assert res.images.shape[1:] == (62, 62, 3) and len(res.index) + len(res.no_face) == len(recs)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("crops-*.npz")} == before


def test_eval_takes_several_sets_and_a_set_without_split_whole(box_run, two_sets):
    out, _, _ = box_run
    utk, aaf = two_sets
    r = CliRunner().invoke(cli, ["eval", "--model", str(out), "--data", str(utk), "--data", str(aaf), "--split",
                                 "test", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["detect"] is True  # the model's metadata says box crops
    a, b = m["sets"]
    assert a["split"] == "test" and a["n"] + a["skipped"] == 40
    assert b["split"].startswith("all") and b["n"] + b["skipped"] == 151
    assert m["n"] == a["n"] + b["n"]
    assert any(s["path"].endswith("wall.jpg") and "no face" in s["reason"] for s in b["skipped_files"])
    assert "gender" in b["groups"]
    text = CliRunner().invoke(cli, ["eval", "--model", str(out), "--data", str(utk), "--data", str(aaf)]).output
    assert "overall" in text and "wall.jpg: no face found" in text


def test_int8_calibration_draws_from_several_sets_and_takes_an_unsplit_set_whole(box_run, two_sets, tmp_path):
    """Both populations set the activation ranges; the AAF subset has no split column, so all of it is used
    (it once stopped calibration with "no images in split 'train'")."""
    out, _, _ = box_run
    utk, aaf = two_sets
    r = CliRunner().invoke(cli, ["convert", str(out), "--quant", "int8", "--calibration", str(utk), "--calibration",
                                 str(aaf), "--calibration-size", "200", "--out", str(tmp_path / "m.tflite")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    # 120 UTKFace train chips + 150 AAF photos (the faceless one is not a box crop): 200 drawn from both
    assert f"calibration: 200 images drawn from split 'train' of {utk} and all of {aaf} (no splits)" in r.output
    assert json.loads((tmp_path / "m.json").read_text())["extra"]["calibration_size"] == 200


def test_the_cross_dataset_table_names_the_worst_bias_from_18_up():
    """Eval's summary column and the bias probe read one function: the 18+ band furthest from 0, children's
    bands and empty bands left out."""
    from agegate.convert.metrics import age_metrics, worst_adult_bias
    from agegate.convert.report_text import summary_table

    y = np.array([5, 6, 20, 21, 40, 41, 70], float)
    m = age_metrics(y, y + np.array([30, 30, 2, 2, -1, -1, -4.0]))  # children off by 30, not counted
    m["skipped"] = 0
    assert worst_adult_bias(m["bands"]) == ("65+", -4.0)
    assert worst_adult_bias(age_metrics(y[:2], y[:2])["bands"]) is None  # no adult band has images
    row = summary_table([("set", "test", m)], m)[2]
    assert row.split()[5] == "4.00"
    assert row.split()[8] == "28.6%"  # the band counts: the two children of 7 people counted 35-44


def test_the_counts_by_age_band_say_what_the_marketing_use_gets_right():
    """The first use of the box is counting buyers by age band; eval and replay reported each band's error, but
    not how far the counts themselves are off, where errors into and out of a band cancel."""
    from agegate.convert.metrics import age_metrics
    from agegate.convert.report_text import set_block

    y = np.array([10, 20, 21, 30, 40, 50, 60, 70], float)
    est = y + np.array([0, 6, 0, 0, 0, 0, 0, -8.0])  # a 20-year-old counted 25-34, a 70-year-old 55-64
    m = age_metrics(y, est)
    shares = m["band_shares"]
    assert shares["bands"]["18-24"] == {"true": 0.25, "counted": 0.125}
    assert shares["bands"]["25-34"] == {"true": 0.125, "counted": 0.25}
    assert shares["total_variation"] == 0.25 and shares["worst"] == {"band": "18-24", "difference": -0.125}
    # errors that cancel are not counted: a 30-year-old counted 40 and a 40-year-old counted 30
    assert age_metrics(np.array([30, 40.]), np.array([40, 30.]))["band_shares"]["total_variation"] == 0
    m["skipped"], m["skipped_files"] = 0, []
    text = "\n".join(set_block("set", "test", m))
    assert " 18-24     2 " in text and "25.0%   12.5%" in text
    assert "25.0% of people counted in another band" in text and "furthest 18-24, -12.5 points" in text


def test_the_report_title_names_the_split_only_when_a_set_has_it():
    from agegate.convert.report_text import eval_title

    whole = "all (the set has no split)"
    assert eval_title("m.tflite", "test", True, ["test", whole]) == "m.tflite on test through the box detector and crop"
    assert eval_title("m.tflite", "test", False, [whole]) == "m.tflite on each set whole (none has a split)"
