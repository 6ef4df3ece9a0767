"""`agegate replay` on a small fixed set: buyers back to back (gap 0) each get their own decision."""
import csv
import json
import shutil

from click.testing import CliRunner

from agegate.edge.cli import cli

from .conftest import UTK, pick, utk_age

ADULTS = pick("test", 4, seed=41, lo=40, hi=55)
CHILDREN = pick("test", 4, seed=42, lo=4, hi=9)


def test_back_to_back_buyers_are_not_merged_and_children_are_asked(tmp_path, shipped_model):
    root = tmp_path / "set"
    root.mkdir()
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age"])
        for n in ADULTS + CHILDREN:
            shutil.copy(UTK / "images" / n, root / n)
            w.writerow([n, utk_age(n)])
    png = tmp_path / "replay.png"
    r = CliRunner().invoke(cli, ["replay", str(root / "labels.csv"), "--gap", "0", "--frames", "20", "--json",
                                 "--png", str(png)])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["buyers"] == 8 and m["split"] == "test"  # no split in the CSV: the set is replayed whole
    assert m["merged"] == 0 and m["split_buyers"] <= 1  # lookalikes back to back may still part late
    assert m["minors"] == 4 and m["minors_decided_ok"] == 0  # no child is waved through
    assert m["decided_share"] >= 0.75 and m["adults_asked"] <= 1
    assert m["empty_frame_p50_ms"] is not None and png.exists()
    text = CliRunner().invoke(cli, ["replay", str(root / "labels.csv"), "--gap", "0..3", "--frames", "12"]).output
    assert "merged (no own decision)" in text and "minors decided ok" in text


def test_replay_rejects_a_bad_gap(tmp_path):
    r = CliRunner().invoke(cli, ["replay", str(UTK), "--gap", "9..2"])
    assert r.exit_code == 2 and "must not be empty" in r.output
