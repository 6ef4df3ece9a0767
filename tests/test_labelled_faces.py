"""Group photos: a CSV may mark whose face a row's age belongs to (face_x,face_y,face_w,face_h), and the
box's detector then crops that face rather than the largest one in the photo."""
import csv
import json

import cv2
import numpy as np
from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.detect import FaceBox, labelled_face
from agegate.edge.preprocess import decode_image
from agegate.train.datasets import read_dataset

from .conftest import UTK, pick, utk_age


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_csv(path, rows, header=("path", "age", "face_x", "face_y", "face_w", "face_h")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_face_box_columns_are_read_checked_and_kept_out_of_the_groups(tmp_path):
    labels = write_csv(tmp_path / "labels.csv", [
        ("a.jpg", 30, 10, 20, 100, 120),   # line 2: a box
        ("a.jpg", 8, 300, 40, 60, 60),     # line 3: another face of the same photo: not a duplicate
        ("b.jpg", 40, "", "", "", ""),     # line 4: no box
        ("c.jpg", 41, 10, 20, "", 50),     # line 5: incomplete
        ("d.jpg", 42, 10, "x", 30, 30),    # line 6: not a number
        ("e.jpg", 43, -5, 20, 30, 30),     # line 7: a face cut by the photo's left edge, boxed whole: fine
        ("f.jpg", 44, 5, 20, 0, 30),       # line 8: no size
        ("a.jpg", 31, 10, 20, 100, 120),   # line 9: the face of line 2 again
        ("a.jpg", 33, 15, 25, 100, 120),   # line 10: nearly line 2's box: one face labelled twice?
        ("g.jpg", 45, 0.3, 0.2, 0.1, 0.15),  # line 11: shares of the image, not pixels
    ])
    ds = read_dataset(labels)
    bad = {p.line: p for p in ds.problems if p.kind == "bad_box"}
    assert sorted(bad) == [5, 6, 8, 11]
    assert "pixels" in bad[11].detail and "multiplied by its width and height" in bad[11].detail
    assert "face_w" in bad[5].detail and "give all four" in bad[5].detail
    assert [(p.kind, p.line) for p in ds.problems if p.kind == "duplicate_name"] == [("duplicate_name", 9)]
    (overlap,) = [p for p in ds.problems if p.kind == "box_overlap"]
    assert overlap.line == 10 and "line 2" in overlap.detail and overlap.severity == "warning"
    by_line = {r.line: r for r in ds.records}
    assert by_line[2].box == (10, 20, 110, 140) and by_line[3].box == (300, 40, 360, 100)
    assert by_line[7].box == (-5, 20, 25, 50)
    assert by_line[2].face_label == FaceBox(10, 20, 110, 140)
    assert by_line[4].box is None and by_line[4].face_label is None
    assert all(not r.attrs for r in ds.records)  # box columns are not groups to report MAE by


def test_fingerprint_is_unchanged_without_boxes_and_changes_with_them(tmp_path):
    plain = read_dataset(write_csv(tmp_path / "a.csv", [("a.jpg", 30), ("b.jpg", 40)], ("path", "age")))
    empty = read_dataset(write_csv(tmp_path / "b.csv", [("a.jpg", 30, "", "", "", ""), ("b.jpg", 40, "", "", "", "")]))
    boxed = read_dataset(write_csv(tmp_path / "c.csv", [("a.jpg", 30, 10, 20, 30, 40), ("b.jpg", 40, "", "", "", "")]))
    assert len(boxed.records) == 2 and not boxed.problems
    assert plain.fingerprint() == empty.fingerprint() != boxed.fingerprint()


def test_the_labelled_face_is_the_one_the_label_marks_however_loosely():
    """Data sets draw boxes their own way: tight inner faces, loose heads, the whole person."""
    near, far = FaceBox(100, 100, 200, 200), FaceBox(400, 100, 460, 160)
    tight = FaceBox(120, 120, 180, 190)     # inside the detected face
    loose = FaceBox(60, 40, 260, 400)       # head and shoulders around it
    assert labelled_face([far, near], tight) == near
    assert labelled_face([far, near], loose) == near
    assert labelled_face([near, far], FaceBox(405, 105, 455, 155)) == far
    assert labelled_face([near, far], FaceBox(250, 300, 300, 350)) is None  # nobody there
    assert labelled_face([], tight) is None
    twin = FaceBox(130, 130, 230, 230)      # both hold the label's centre: the one overlapping it most wins
    assert labelled_face([twin, near], FaceBox(100, 100, 195, 195)) == near


def _group_photo(tmp_path):
    """A 1280x960 photo of an adult (a 360 px chip) and, beside them, a child (200 px): the adult's face
    is the largest. Returns the file, each person's age and face rectangle (x, y, w, h: the chip pasted)."""
    child, adult = pick("test", 1, seed=4, lo=3, hi=8)[0], pick("test", 1, seed=4, lo=55, hi=70)[0]
    photo = np.full((960, 1280, 3), 110, np.uint8)
    people = []
    for name, (x, y, side) in ((adult, (150, 300, 360)), (child, (800, 420, 200))):
        photo[y:y + side, x:x + side] = cv2.resize(decode_image(UTK / "images" / name), (side, side))
        people.append((utk_age(name), (x, y, side, side)))
    path = tmp_path / "group.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path, people


def _estimates(tmp_path, shipped_model, labels):
    preds = tmp_path / f"{labels.stem}-predictions.csv"
    res = run("eval", "--model", shipped_model, "--data", labels, "--split", "all", "--detect",
              "--predictions", preds, "--json")
    assert res.exit_code == 0, res.output
    return {int(r["line"]): float(r["predicted"]) for r in csv.DictReader(open(preds))}


def test_eval_crops_the_labelled_face_of_a_group_photo(tmp_path, shipped_model):
    """One photo, two rows: each row's estimate is its own person's. Without a box both rows would be the
    adult's (the largest face): the child's row alone, unmarked, is estimated as the adult."""
    photo, ((adult_age, adult_box), (child_age, child_box)) = _group_photo(tmp_path)
    boxed = write_csv(tmp_path / "boxed.csv", [("group.jpg", adult_age, *adult_box), ("group.jpg", child_age, *child_box)])
    check = run("data", "check", boxed, "--json")
    assert check.exit_code == 0 and json.loads(check.output)["ok"] == 2, check.output
    est = _estimates(tmp_path, shipped_model, boxed)
    assert est[3] < 15 and est[2] > 40, (est, adult_age, child_age)
    # each row names the face the detector took, in the label CSV's own columns
    rows = {int(r["line"]): r for r in csv.DictReader(open(tmp_path / "boxed-predictions.csv"))}
    for line, (x, y, w, h) in ((2, adult_box), (3, child_box)):
        fx, fy, fw, fh = (float(rows[line][k]) for k in ("face_x", "face_y", "face_w", "face_h"))
        assert FaceBox(x, y, x + w, y + h).contains(fx + fw / 2, fy + fh / 2) and 0.3 * w < fw < 1.5 * w, rows[line]
    unmarked = _estimates(tmp_path, shipped_model, write_csv(tmp_path / "unmarked.csv", [("group.jpg", child_age)],
                                                               ("path", "age")))
    # the adult's face (detected on the region around the label, its box differs a little from the one
    # found on the whole photo: 60.7 against 63.0 measured)
    assert unmarked[2] > 40 and abs(unmarked[2] - est[2]) < 5, (unmarked, est)


def test_a_face_box_outside_the_image_is_an_error_with_its_line(tmp_path):
    photo, ((age, _), _) = _group_photo(tmp_path)
    labels = write_csv(tmp_path / "labels.csv", [("group.jpg", age, 1500, 100, 100, 100)])
    res = run("data", "check", labels, "--json")
    assert res.exit_code == 1, res.output
    (problem,) = [p for p in json.loads(res.output)["problems"] if p["kind"] == "bad_box"]
    assert problem["line"] == 2 and "outside the 1280x960 image" in problem["detail"]


def test_training_crops_and_replay_take_the_labelled_face_too(tmp_path):
    """`train --crop box` caches each row's own face, and `agegate replay` places each row's own person at
    the till: the same labelled-face rule as eval's."""
    from agegate.convert.replay import load_buyers
    from agegate.edge.preprocess import PreprocessSpec
    from agegate.train.crops import crop_records

    photo, people = _group_photo(tmp_path)
    rows = [("group.jpg", age, *box) for age, box in people]
    records = read_dataset(write_csv(tmp_path / "boxed.csv", rows)).records
    crops = crop_records(records, PreprocessSpec(face_crop="box"))
    assert crops.index == [0, 1] and not crops.no_face
    for (x0, y0, x1, y1, _), (_, (x, y, w, h)) in zip(crops.boxes, people):
        assert FaceBox(x, y, x + w, y + h).contains((x0 + x1) / 2, (y0 + y1) / 2)
    buyers, unplaced = load_buyers(records)
    assert not unplaced and [b.age for b in buyers] == [age for age, _ in people]
    grey = [cv2.cvtColor(b.patch, cv2.COLOR_RGB2GRAY).astype(np.float32) for b in buyers]
    assert np.abs(grey[0] - grey[1]).mean() > 10  # two people's heads, not the adult's twice


def test_float_and_int8_predictions_pair_by_file_and_line():
    """QA compares a float and a quantized model image by image; a group photo is one file with a row per
    face, so a file alone would pair one person's float estimate with another's int8 estimate."""
    from agegate.convert.evaluate import Predictions

    f = Predictions(["g.jpg", "g.jpg", "a.jpg"], np.array([8.0, 60.0, 30.0]), np.array([9.0, 58.0, 31.0]),
                    lines=[2, 3, 4])
    q = Predictions(["a.jpg", "g.jpg", "g.jpg"], np.array([30.0, 60.0, 8.0]), np.array([32.0, 57.0, 10.0]),
                    lines=[4, 3, 2])  # another order; the child's row first in one, last in the other
    keep, qkeep = f.pair(q)
    assert keep == [0, 1, 2] and list(q.y_true[qkeep]) == [8.0, 60.0, 30.0]
    skipped = Predictions(["g.jpg"], np.array([60.0]), np.array([57.0]), lines=[3])  # the child not found
    assert f.pair(skipped) == ([1], [0])


def test_the_data_report_outlines_each_labelled_face(tmp_path):
    """`agegate data report` shows sample images with the labelled face outlined, for a person to check that
    each box holds the face its age belongs to."""
    from agegate.train.report import outlined

    photo, people = _group_photo(tmp_path)
    rgb = decode_image(photo)
    (_, (x, y, w, h)), _ = people
    drawn = outlined(rgb, (x, y, x + w, y + h))
    changed = (drawn != rgb).any(axis=2)
    assert changed[y, x + w // 2] and changed[y + h // 2, x] and changed[y + h, x + w // 2]  # the four sides
    assert not changed[y + h // 2, x + w // 2] and not changed[10, 10]  # not the face, not elsewhere
    assert outlined(rgb, None) is rgb
    labels = write_csv(tmp_path / "boxed.csv", [("group.jpg", age, *box) for age, box in people])
    res = run("data", "report", labels, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "2 of 2 images mark the labelled person's face" in page


def test_a_model_that_reads_whole_images_is_not_given_a_group_photo_silently(tmp_path):
    """Without the detector a labelled box cannot choose a face (the model would see the photo's centre):
    eval says to pass --detect, with the count of rows that mark a box; with --detect it runs."""
    from .conftest import gaussian_model

    model = gaussian_model(tmp_path / "thirty.tflite", 30.0)
    photo, people = _group_photo(tmp_path)
    labels = write_csv(tmp_path / "boxed.csv", [("group.jpg", age, *box) for age, box in people])
    res = run("eval", "--model", model, "--data", labels, "--split", "all")
    assert res.exit_code == 2 and "2 of 2 images mark a labelled face box" in res.output and "--detect" in res.output
    res = run("eval", "--model", model, "--data", labels, "--split", "all", "--detect", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["n"] == 2, res.output


def test_training_on_whole_images_refuses_labelled_boxes(tmp_path):
    """`train --crop none` reads each image whole: a group photo's labelled face would be lost, so the
    boxed rows stop the run before any decoding, saying to train with --crop box."""
    import pytest

    from agegate.edge.errors import UsageError
    from agegate.edge.preprocess import PreprocessSpec
    from agegate.train.inputs import decode_records

    photo, people = _group_photo(tmp_path)
    records = read_dataset(write_csv(tmp_path / "boxed.csv", [("group.jpg", age, *box) for age, box in people])).records
    with pytest.raises(UsageError, match="2 of 2 images mark a labelled face box.*--crop box"):
        decode_records(records, PreprocessSpec())
    assert len(decode_records(records, PreprocessSpec(face_crop="box")).ages) == 2


def test_a_group_photo_keeps_its_people_and_their_other_photos_in_one_split(tmp_path):
    """The person-aware split treats a photo's rows as linked: A and B share a photo, B has one alone, and
    C is alone; A's and B's three rows land in one split whatever the seed. Without group photos the split
    is the one it always was (groups named by person, else file)."""
    from agegate.train.datasets import Record
    from agegate.train.split import _group_of, make_split

    group, b_alone = tmp_path / "group.jpg", tmp_path / "b.jpg"
    rows = [Record(group, 30, person="A", box=(0, 0, 10, 10)), Record(group, 8, person="B", box=(20, 0, 30, 10)),
            Record(b_alone, 9, person="B")]
    others = [Record(tmp_path / f"c{i}.jpg", 20 + i, person=f"C{i}") for i in range(40)]
    names = _group_of(rows + others)
    assert {names[id(r)] for r in rows} == {"A"} and names[id(others[0])] == "C0"
    for seed in range(6):
        split = make_split(rows + others, 0.3, 0.3, seed)
        assert split[group] == split[b_alone]
    plain = [Record(tmp_path / f"p{i}.jpg", 20 + i % 40, person=f"person{i // 5}") for i in range(30)]
    plain += [Record(tmp_path / f"n{i}.jpg", 30) for i in range(5)]
    assert {n for n in _group_of(plain).values()} == {f"person{i}" for i in range(6)} | {
        f"file:{tmp_path / f'n{i}.jpg'}" for i in range(5)}


def test_eval_says_where_the_largest_face_was_taken_beside_another_as_large(tmp_path, shipped_model):
    """An unlabelled group photo: the largest face is taken, and eval counts the rows where another face at
    least half its size was found (someone else's?), in text, JSON and the predictions CSV; a labelled row
    or a photo of one person is not counted."""
    photo, people = _group_photo(tmp_path)  # the child's face is 200/360 of the adult's
    cv2.imwrite(str(tmp_path / "alone.jpg"), cv2.imread(str(UTK / "images" / pick("test", 1, seed=9)[0])))
    labels = write_csv(tmp_path / "mixed.csv", [("group.jpg", people[0][0], "", "", "", ""),
                                                ("group.jpg", people[1][0], *people[1][1]),
                                                ("alone.jpg", 30, "", "", "", "")])
    preds = tmp_path / "p.csv"
    res = run("eval", "--model", shipped_model, "--data", labels, "--split", "all", "--detect", "--json",
              "--predictions", preds)
    assert res.exit_code == 0 and json.loads(res.output)["several_faces"] == 1, res.output
    assert [r["other_faces"] for r in csv.DictReader(open(preds))] == ["1", "0", "0"]
    text = run("eval", "--model", shipped_model, "--data", labels, "--split", "all", "--detect")
    assert "1 image(s) show another face at least half the size of the one taken" in text.output
