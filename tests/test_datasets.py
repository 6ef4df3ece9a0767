import csv
import logging
import shutil

import pytest

from agegate.edge.errors import DatasetError
from agegate.train.datasets import detect_format, read_dataset

from .conftest import UTK, build_appa, pick, utk_age, write_labels


def test_utkface_reader_survives_quirks(utk_root):
    ds = read_dataset(utk_root)
    assert ds.format == "utkface"
    assert len(ds.records) == 21292
    names = {r.name: r for r in ds.records}
    assert names["39_1_20170116174525125.jpg.chip.jpg"].age == 39  # race field missing
    assert names["39_1_20170116174525125.jpg.chip.jpg"].attr("race") is None
    assert names["55_0_0_20170116232725357jpg.chip.jpg"].age == 55  # no dot before jpg
    assert {r.split for r in ds.records} == {"train", "val", "test"}  # split.csv beside images/ is used
    assert sum(r.split == "test" for r in ds.records) == 2396


def test_appa_brief_layout(appa_dir):
    assert detect_format(appa_dir) == "appa"
    ds = read_dataset(appa_dir)
    assert len(ds.records) == 30 and all(r.path.exists() for r in ds.records)
    assert ds.records[0].line == 2 and ds.records[0].source.endswith("labels.csv")


def test_appa_original_layout_real_and_apparent(tmp_path):
    names = pick("train", 6, seed=3)
    for part in ("train", "valid", "test"):
        (tmp_path / part).mkdir()
    with open(tmp_path / "gt_avg_train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"])
        for i, n in enumerate(names[:4]):
            shutil.copy(UTK / "images" / n, tmp_path / "train" / f"{i:06d}.jpg")
            if i == 0:  # the published data set also ships face crops
                shutil.copy(UTK / "images" / n, tmp_path / "train" / f"{i:06d}.jpg_face.jpg")
            w.writerow([f"{i:06d}.jpg", 30, utk_age(n) + 2.5, 3.1, utk_age(n)])
    with open(tmp_path / "gt_avg_valid.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"])
        for i, n in enumerate(names[4:]):
            shutil.copy(UTK / "images" / n, tmp_path / "valid" / f"{i:06d}.jpg")
            w.writerow([f"{i:06d}.jpg", 30, utk_age(n) + 1, 2.0, utk_age(n)])
    real = read_dataset(tmp_path)
    assert real.format == "appa-orig"
    assert [r.split for r in real.records] == ["train"] * 4 + ["val"] * 2
    assert real.records[0].path.name == "000000.jpg_face.jpg"
    assert real.records[1].path.name == "000001.jpg"
    apparent = read_dataset(tmp_path, target="apparent")
    assert apparent.records[0].age == real.records[0].age + 2.5


def test_a_labels_csv_beside_utkface_named_files_holds_their_ages(tmp_path):
    """Chips relabelled in a CSV (path,age) keep their UTKFace file names: the folder is read by the CSV, not
    by the names (which once gave each chip its old age and called the CSV's other rows bad names). A folder
    whose only CSV is UTKFace's split.csv is UTKFace as before."""
    from .conftest import labelled_chips

    names = pick("train", 6, seed=2)
    labels = labelled_chips(tmp_path / "relabelled", names)
    with open(labels, "w", newline="") as f:
        csv.writer(f).writerows([("path", "age")] + [(n, utk_age(n) + 1) for n in names])
    assert detect_format(tmp_path / "relabelled") == "csv"
    ds = read_dataset(tmp_path / "relabelled")
    assert {r.name: r.age for r in ds.records} == {n: utk_age(n) + 1 for n in names} and not ds.problems
    (tmp_path / "relabelled" / labels.name).rename(tmp_path / "relabelled" / "notes.csv")
    (tmp_path / "relabelled" / "notes.csv").write_text("file_name,split\n")
    assert detect_format(tmp_path / "relabelled") == "utkface"


def test_generic_csv_reports_bad_rows_and_keeps_reading(bad_files_dir):
    ds = read_dataset(bad_files_dir / "labels.csv")
    assert ds.format == "csv"
    kinds = [(p.kind, p.line) for p in ds.problems]
    assert ("bad_age", 4) in kinds  # 'abc'
    assert ("bad_age", 15) in kinds  # 150
    assert ("bad_split", 16) in kinds  # 'holdout'
    assert ("duplicate_name", 14) in kinds
    assert len(ds.records) == 12  # every other row still read


def test_split_file_applies_to_any_format(tmp_path, appa_dir):
    split = tmp_path / "split.csv"
    split.write_text("file_name,split\n000000.jpg,test\n000001.jpg,valid\n")
    ds = read_dataset(appa_dir, split_file=split)
    assert ds.records[0].split == "test" and ds.records[1].split == "val"
    assert any(p.kind == "not_in_split" for p in ds.problems)
    assert not any(p.kind == "not_in_data" for p in ds.problems)
    # rows that name no image here (a split file of another set, renamed images) are said, with the first's line
    split.write_text("file_name,split\n000000.jpg,test\nelsewhere.jpg,train\nalso-elsewhere.jpg,val\n")
    stray = [p for p in read_dataset(appa_dir, split_file=split).problems if p.kind == "not_in_data"]
    assert len(stray) == 1 and stray[0].line == 3 and "2 row(s) name no image" in stray[0].detail


@pytest.mark.parametrize("fmt,needle", [("csv", "a CSV with path,age"), ("appa", "labels.csv (file_name,real_age)"),
                                        ("appa-orig", "gt_avg_train.csv")])
def test_a_format_given_by_hand_that_is_not_there_is_named(tmp_path, fmt, needle):
    """--format csv on a folder without a CSV ended in a StopIteration traceback; --format appa on one without
    labels.csv said "labels.csv found"; appa-orig read nothing and said nothing. Each now names what is missing."""
    with pytest.raises(DatasetError, match=f"not the {fmt} layout, which needs .*{needle.split(' ')[0]}"):
        read_dataset(tmp_path, fmt)


def test_unreadable_dataset_raises(tmp_path):
    with pytest.raises(DatasetError, match="cannot tell"):
        read_dataset(tmp_path)
    (tmp_path / "labels.csv").write_text("name,age\n")
    (tmp_path / "final_files").mkdir()
    with pytest.raises(DatasetError, match="line 1: missing column"):
        read_dataset(tmp_path)


def test_fingerprint_changes_with_labels(tmp_path):
    a = build_appa(tmp_path / "a", pick("train", 5, seed=2))
    fp1 = read_dataset(a).fingerprint()
    lines = (a / "labels.csv").read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",99"
    (a / "labels.csv").write_text("\n".join(lines) + "\n")
    assert read_dataset(a).fingerprint() != fp1


def test_a_training_cache_is_made_again_for_an_image_replaced_in_place(tmp_path, caplog):
    """The decode cache was keyed by path and label: an image fixed in place under the same name kept being
    served from the old pixels. The key now holds each file's size and time; a cache file that does not read is
    warned about and made again."""
    import cv2
    import numpy as np

    from agegate.edge.preprocess import PreprocessSpec
    from agegate.train.datasets import Record
    from agegate.train.inputs import decode_records

    paths = []
    for i, shade in enumerate((40, 120, 200)):
        p = tmp_path / f"{20 + i}_0_0_0.jpg"
        cv2.imwrite(str(p), np.full((64, 64, 3), shade, np.uint8))
        paths.append(p)
    records = [Record(p, 20.0 + i) for i, p in enumerate(paths)]
    spec, cache = PreprocessSpec(input_size=32, face_crop="none"), tmp_path / "cache"
    first = decode_records(records, spec, cache_dir=cache)
    assert abs(int(first.images[0].mean()) - 40) < 3 and len(list(cache.glob("*.npz"))) == 1
    cv2.imwrite(str(paths[0]), np.full((80, 80, 3), 250, np.uint8))  # fixed in place: same name, same age
    again = decode_records(records, spec, cache_dir=cache)
    assert abs(int(again.images[0].mean()) - 250) < 3
    newest = max(cache.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level("WARNING", logger="agegate.train"):
        third = decode_records(records, spec, cache_dir=cache)
    assert abs(int(third.images[0].mean()) - 250) < 3 and "does not read" in caplog.text


def test_eval_says_which_label_rows_it_measured_without(bad_files_dir, shipped_model, tmp_path, caplog):
    """Rows with a bad age or split are left out of every split; a figure measured without them says so, with
    file and line (eval printed '(1 images, 0 skipped)' over a file with two such rows), and a split left
    empty by them names the first of them instead of only 'no images in split'."""
    from click.testing import CliRunner

    from agegate.edge.cli import cli

    ds = read_dataset(bad_files_dir / "labels.csv")
    note = ds.unread_rows()
    assert note.startswith("3 label row(s) not read") and "labels.csv line 4: age 'abc' is not a number" in note
    assert "duplicate" not in note  # a warning-kind problem is read, not left out
    with caplog.at_level(logging.WARNING, logger="agegate"):
        r = CliRunner().invoke(cli, ["eval", "--model", str(shipped_model), "--data",
                                     str(bad_files_dir / "labels.csv"), "--split", "val"])
    assert r.exit_code == 0, r.output
    assert "3 label row(s) not read" in caplog.text and "line 16: unknown split 'holdout'" in caplog.text
    only_bad = write_labels(tmp_path / "only-bad.csv", [("a.jpg", "abc", "test")])
    r = CliRunner().invoke(cli, ["eval", "--model", str(shipped_model), "--data", str(only_bad), "--split", "test"])
    assert r.exit_code == 2 and "no row read" in r.output and "only-bad.csv line 2: age 'abc'" in r.output
