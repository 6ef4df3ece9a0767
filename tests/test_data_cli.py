import csv
import json
import time
from collections import Counter

from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.train.datasets import Record
from agegate.train.split import make_split


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_check_reports_every_problem_kind(bad_files_dir):
    res = run("data", "check", bad_files_dir, "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.output)
    kinds = Counter((p["kind"], p["severity"]) for p in out["problems"])
    for kind in ("bad_age", "bad_split", "duplicate_name", "missing", "empty", "truncated", "corrupt"):
        assert (kind, "error") in kinds, kind
    assert ("duplicate_content", "warning") in kinds
    modes = {p["file"].rsplit("/", 1)[-1]: p["detail"] for p in out["problems"] if p["kind"] == "mode"}
    assert "RGBA" in modes["rgba.png"] and "readable after conversion" in modes["rgba.png"]
    assert "16-bit" in modes["sixteen.png"]
    assert "grayscale" in modes["grey.jpg"]
    assert "CMYK" in modes["cmyk.jpg"]
    by_file = {p["file"].rsplit("/", 1)[-1]: p for p in out["problems"]}
    assert by_file["truncated.jpg"]["line"] == 6
    # usable: good0, dup_bytes and the four convertible modes; good1 is listed twice (which label holds?)
    assert out["ok"] == 6


def test_check_text_output_and_clean_exit(appa_dir):
    res = run("data", "check", appa_dir)
    assert res.exit_code == 0, res.output
    assert "30 images ok of 30 records" in res.output and "splits: no split (train makes" in res.output


def test_splits_are_said_in_words_and_a_set_without_them_says_what_happens():
    """data check and data report printed the summary's dict as it is (`splits {'none': 60}`)."""
    from agegate.train.check import splits_in_words

    assert splits_in_words({"test": 2396, "train": 16494, "val": 2402}) == "train 16,494, val 2,402, test 2,396"
    whole = splits_in_words({"none": 60})
    assert whole.startswith("no split (train makes a seeded, person-aware one") and "take the set whole" in whole
    assert splits_in_words({"train": 5, "none": 2}).startswith("train 5, 2 in no split (")


def test_usage_error_exit_2(tmp_path):
    assert run("data", "check", tmp_path / "nope").exit_code == 2
    assert run("data", "check", tmp_path, "--format", "nonsense").exit_code == 2


def test_check_full_utkface_under_a_minute(utk_root):
    t0 = time.perf_counter()
    res = run("data", "check", utk_root, "--json")
    seconds = time.perf_counter() - t0
    out = json.loads(res.output)
    assert res.exit_code == 0, out["problems_by_kind"]
    assert out["ok"] == 21292
    print(f"checked 21,292 images in {seconds:.1f}s")  # timing is reported, not asserted (benchmarks own it)


def test_report_writes_html_and_pngs(appa_dir, tmp_path):
    res = run("data", "report", appa_dir, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Age histogram" in page or "age_histogram" in page
    for png in ("age_histogram.png", "age_bands.png", "image_sizes.png", "samples.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
    res = run("data", "report", appa_dir, "--out", tmp_path / "rep2", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["ok"] and d["report"] == str(tmp_path / "rep2" / "report.html")
    assert d["summary"] == json.loads((tmp_path / "rep2" / "summary.json").read_text())


def test_split_is_deterministic_stratified_and_keeps_persons(tmp_path, appa_dir):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run("data", "split", appa_dir, "--val", "0.2", "--test", "0.2", "--out", a).exit_code == 0
    r = run("data", "split", appa_dir, "--val", "0.2", "--test", "0.2", "--out", b, "--json")
    assert a.read_text() == b.read_text()
    before = a.read_text()  # a split is not written over (it once was, unsaid: every later figure moved)
    again = run("data", "split", appa_dir, "--seed", "7", "--out", a)
    assert again.exit_code == 2 and "is not written over" in again.output and a.read_text() == before
    rows = list(csv.DictReader(open(a)))
    assert len(rows) == 30 and {r["split"] for r in rows} == {"train", "val", "test"}
    got = json.loads(r.stdout)
    assert got["out"] == str(b) and sum(got[k] for k in ("train", "val", "test")) == 30
    assert got["val"] == sum(row["split"] == "val" for row in rows)
    # persons stay together
    recs = [Record(tmp_path / f"p{i}.jpg", 20 + i % 40, person=f"person{i // 5}") for i in range(100)]
    assignment = make_split(recs, 0.2, 0.2, seed=3)
    for person in {r.person for r in recs}:
        assert len({assignment[r.path] for r in recs if r.person == person}) == 1


def test_split_keeps_byte_identical_photos_together(tmp_path):
    """One photo saved under two names (All-Age-Faces holds 188 such groups) is one face: a split by photo
    alone put 57 of those groups on both sides of the evaluation. Every copy lands with its original, whatever
    the seed; the output says what was kept together."""
    import shutil

    from .conftest import labelled_chips, pick, utk_age

    names = pick("train", 40, seed=4)
    root = tmp_path / "set"
    labels = labelled_chips(root, names)
    copies = []
    for k, n in enumerate(names[:8]):  # eight photos saved again, three of them with another age
        shutil.copy(root / n, root / f"copy{k}.jpg")
        copies.append((n, f"copy{k}.jpg"))
    with open(labels, "a", newline="") as f:
        csv.writer(f).writerows([(c, utk_age(n) + (10 if k < 3 else 0)) for k, (n, c) in enumerate(copies)])
    for seed in range(5):
        out = tmp_path / f"split{seed}.csv"
        r = run("data", "split", labels, "--val", "0.3", "--test", "0.3", "--seed", seed, "--out", out, "--json")
        assert r.exit_code == 0, r.output
        got = json.loads(r.stdout)
        assert got["copy_groups"] == 8 and got["copy_files"] == 16 and got["persons"] == 0
        split = {row["file_name"]: row["split"] for row in csv.DictReader(open(out))}
        assert len(split) == 48 and len(set(split.values())) == 3
        assert all(split[n] == split[c] for n, c in copies), seed
    text = run("data", "split", labels, "--out", tmp_path / "t.csv").output
    assert "no person ids" in text and "8 group(s) of byte-identical files (16 files" in text


def test_label_suspects_need_both_the_interval_and_the_gap():
    """A confident face a few years off, or an uncertain one far off, is not flagged: only a label outside the
    central interval AND at least min_gap years from the estimate is; like labels come together."""
    import numpy as np

    from agegate.edge.age_head import AgeHead
    from agegate.train.label_errors import LabelExclusion
    from agegate.train.label_review import label_suspects, not_listed

    head = AgeHead.distribution()
    ages = head.ages.astype(float)

    def peak(mean, sd):
        p = np.exp(-0.5 * ((ages - mean) / sd) ** 2)
        return p / p.sum()

    probs = np.stack([peak(40, 1), peak(40, 1), peak(40, 30), peak(10, 2), peak(60, 2)])
    labels = np.array([45, 70, 70, 50, 20])  # 5 off but confident; 30 off; 30 off but uncertain; 40 off; 40 off
    paths = ["0.jpg", "1.jpg", "2.jpg", "group.jpg", "group.jpg"]  # a group photo: a label row per face
    found = label_suspects(paths, [2, 3, 4, 5, 6], labels, probs @ ages, probs, head, level=0.99, min_gap=10)
    assert [s.where for s in found] == ["group.jpg:6", "group.jpg:5", "1.jpg"]  # by label: 20, 50, 70
    assert [s.number for s in found] == [0, 1, 2] and found[2].estimate == 40.0 and found[2].high < 70
    point = probs @ ages + np.array([0, 26, 0, 0, 0])  # the gap is measured from the point estimate given (eval's)
    assert [s.where for s in label_suspects(paths, [2, 3, 4, 5, 6], labels, point, probs, head)] == [
        "group.jpg:6", "group.jpg:5"]
    left = not_listed(found, [LabelExclusion("group.jpg", "checked", 6), LabelExclusion("1.jpg", "checked")])
    assert [(s.number, s.where) for s in left] == [(0, "group.jpg:5")]  # the photo's other face stays


def test_data_review_flags_wrong_labels_and_writes_a_list_to_check(tmp_path, shipped_model):
    """The shipped model over real chips, two of them given labels their faces plainly contradict: both are
    flagged, drawn on a contact sheet and written (commented out) in the exclusion format; a list already
    checked hides its images."""
    from PIL import Image

    from agegate.train.label_errors import read_label_exclusions

    from .conftest import UTK, pick, utk_age, write_labels

    adults, children = pick("val", 4, seed=3, lo=35, hi=55), pick("val", 4, seed=4, lo=3, hi=8)
    root = tmp_path / "set"
    root.mkdir()
    for n in adults + children:
        (root / n).write_bytes((UTK / "images" / n).read_bytes())
    wrong = {adults[0]: 2, children[0]: 70}  # an adult labelled 2 years old, a child labelled 70
    labels = write_labels(root / "labels.csv", [(n, wrong.get(n, utk_age(n))) for n in adults + children],
                          header=("path", "age"))
    out = tmp_path / "review"
    r = run("data", "review", "--model", shipped_model, "--data", labels, "--out", out, "--root", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    flagged = {s["path"].rsplit("/", 1)[-1]: s for s in got["suspects"]}
    assert set(wrong) <= set(flagged), flagged
    assert flagged[adults[0]]["estimate"] > 20 and flagged[children[0]]["estimate"] < 30
    sheet = Image.open(out / "sheet-01.png")
    n = len(got["suspects"])  # a page as large as its faces need (a few once sat on a blank page for 20)
    assert sheet.size == (200 * min(n, 5), 218 * -(-n // 5)) and len(sheet.getcolors(1 << 20)) > 1000  # faces drawn
    listing = (out / "to-check.txt").read_text()
    assert f"# set/{adults[0]}  labelled 2;" in listing and not read_label_exclusions(out / "to-check.txt")
    (out / "sheet-09.png").write_bytes(b"an earlier review's page")  # replaced, not left beside this review's
    checked = tmp_path / "checked.txt"  # a reviewer's list: the adult, found wrong
    checked.write_text(f"set/{adults[0]}  labelled 2; an adult\n")
    again = json.loads(run("data", "review", "--model", shipped_model, "--data", labels, "--out", out,
                           "--exclude", checked, "--json").output)
    assert again["already_listed"] == 1 and adults[0] not in {s["path"].rsplit("/", 1)[-1] for s in again["suspects"]}
    assert sorted(p.name for p in out.glob("sheet-*.png")) == ["sheet-01.png"]
    text = run("data", "review", "--model", shipped_model, "--data", labels, "--out", out)
    assert text.exit_code == 0 and "to check" in text.output and "sheet-*.png" in text.output
    bad = run("data", "review", "--model", shipped_model, "--data", labels, "--out", out, "--level", "99")
    assert bad.exit_code == 2 and "--level must be between 0 and 1" in bad.output
    # A reviewer's marks are not written over by the next review (they once were: every line commented again).
    listing = out / "to-check.txt"
    listing.write_text("".join(ln.removeprefix("# ") if children[0] in ln else ln
                               for ln in listing.read_text().splitlines(keepends=True)))
    marked = listing.read_text()
    r = run("data", "review", "--model", shipped_model, "--data", labels, "--out", out)
    assert r.exit_code == 2 and "1 line(s) a reviewer uncommented" in r.output and listing.read_text() == marked
