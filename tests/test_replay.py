"""`agegate replay` on a small fixed set: buyers back to back (gap 0) each get their own decision."""
import json
from dataclasses import replace

import cv2
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli

from .conftest import UTK, labelled_chips, pick

ADULTS = pick("test", 4, seed=41, lo=40, hi=55)
CHILDREN = pick("test", 4, seed=42, lo=4, hi=9)


def test_back_to_back_buyers_are_not_merged_and_children_are_asked(tmp_path, shipped_model):
    labels = labelled_chips(tmp_path / "set", ADULTS + CHILDREN)
    png, curve = tmp_path / "replay.png", tmp_path / "curve.png"
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0", "--frames", "20", "--json",
                                 "--png", str(png), "--curve", str(curve)])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    # the per-buyer trade-off: one point per threshold, from asking every adult down to those the box could not
    # decide (asked at any threshold), at most what the box asked here; drawn as a chart
    asked = [p["adults_asked"] for p in m["risk_curve"]]
    assert asked[0] == 1.0 and asked == sorted(asked, reverse=True) and asked[-1] <= m["adults_asked_share"]
    assert cv2.imread(str(curve)).shape == (378, 540, 3)  # plot_tradeoff's 6 x 4.2 in at 90 dpi
    assert m["buyers"] == 8 and m["split"] == "test"  # no split in the CSV: the set is replayed whole...
    assert m["replayed_from"] == "set [all (the set has no split)]"  # ...and says so (it said "[test]")
    assert m["merged"] == 0 and m["split_buyers"] <= 1  # lookalikes back to back may still part late
    assert m["minors"] == 4 and m["minors_decided_ok"] == 0  # no child is waved through
    assert m["decided_share"] >= 0.75 and m["adults_asked"] <= 1
    assert m["empty_frame_p50_ms"] is not None and png.exists()
    assert m["false_decisions"] == 0  # the till's empty frames show no face
    # row by row with the risks, how far the box saw each buyer turned (UTKFace chips face the camera)
    assert len(m["buyer_turns"]) == len(m["buyer_risks"]) == 8 and all(0 <= t < 0.2 for t in m["buyer_turns"])
    # decide_after (10) good frames at 15 frames/s: the answer comes while the buyer is still shown (20 frames)
    assert 10 / 15 <= m["seconds_to_decision_p50"] <= m["seconds_to_decision_p95"] <= 20 / 15
    assert m["decided_while_shown_share"] >= 0.75
    # the marketing counts: the buyers' shares per age band, from their own decisions' fused ages
    shares = m["band_shares"]
    assert sum(b["true"] for b in shares["bands"].values()) == pytest.approx(1.0)
    assert sum(b["counted"] for b in shares["bands"].values()) == pytest.approx(1.0)
    assert 0 <= shares["total_variation"] <= 1
    text = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0..3", "--frames", "12"]).output
    assert "merged (no own decision)" in text and "minors decided ok" in text and "answer after" in text
    assert "counted in another band" in text and "of buyers, net (furthest" in text
    assert "the till told (last frame) another's decision for 0 buyer(s)" in text and "queue" not in text
    # a buyer shown for fewer frames than decide_after is answered only once their track ends, after they left
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "15", "--frames", "6", "--json"])
    m = json.loads(r.output)
    assert m["decided_while_shown_share"] == 0.0 and m["seconds_to_decision_p50"] > 6 / 15
    # --face-px: a camera too far away gives faces under the detector's 40 px: no buyer is found at all
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "5", "--frames", "12", "--face-px", "32..38",
                                 "--detector", "blazeface-full", "--json"])
    m = json.loads(r.stdout)
    assert m["face_px"] == [32, 38] and m["detector"] == "blazeface-full"
    # the box's camera profile and the draw's seed, recorded with the run
    assert (m["refine_below"], m["min_score"], m["small_face_score"]) == (0.2, 0.5, 0.35) and m["seed"] == 0
    assert m["missed"] == m["buyers"] == 8 and m["decided_share"] == 0.0
    # --queue: each buyer waits behind the one before (their figures apart), and the text says so
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0", "--queue", "1", "--json"])
    m = json.loads(r.output)
    assert m["queue"] == 1.0 and m["by_queue"]["queued"]["buyers"] == 7 and m["by_queue"]["not_queued"]["buyers"] == 1
    assert m["by_queue"]["decided_while_waiting"] == 0 and m["split_buyers"] <= 1 and m["merged"] == 0
    text = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0", "--queue", "1"]).output
    assert "100% of buyers waiting in a queue" in text and "decided while still waiting" in text
    # --ages: only the children become buyers (every minor of a split, not a sample's few)
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0", "--ages", "0..17", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["buyers"] == 4 == m["minors"] and m["adults_25plus"] == 0 and m["ages"] == [0, 17]
    r = CliRunner().invoke(cli, ["replay", str(labels), "--ages", "90..99"])
    assert r.exit_code != 0 and "no photo in set [all (the set has no split)] is labelled with an age in 90..99" in r.output
    # --draws: the same buyers replayed again with the next seed, each draw reported and their mean
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0..3", "--frames", "12", "--draws", "2", "--json"])
    m = json.loads(r.output)
    (other,) = m["more_replays"]
    assert other["seed"] == 1 and other["buyer_paths"] == m["buyer_paths"] and m["seed"] == 0
    assert m["over_draws"]["draws"] == 2 and m["over_draws"]["minors"] == 4
    assert m["over_draws"]["adults_asked"] == (m["adults_asked"] + other["adults_asked"]) / 2
    text = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0..3", "--frames", "12", "--draws", "2"]).output
    assert "draw 1 of 2 (seed 0)" in text and "draw with seed 1:" in text and "over the 2 draws (means)" in text


def test_the_replay_chart_counts_each_share_of_whom_it_counts():
    """`replay --png` drew minors ok and 25+ asked as "% of buyers", and a share of 0 as nothing; each bar now says
    whom it counts and carries its count."""
    import matplotlib.pyplot as plt

    from agegate.convert.replay_cli import draw_replay

    r = {"bands": {"0-12": {"mae": 2.0}, "25-34": {"mae": 4.0}}, "buyers": 1200, "gap": [0, 15], "minors": 191,
         "minors_decided_ok": 0, "adults_25plus": 875, "adults_asked": 212, "merged": 2, "split_buyers": 4}
    fig = draw_replay(r)
    ax = fig.axes[1]
    assert [t.get_text() for t in ax.texts] == ["0 of 191", "212 of 875", "2 of 1200", "4 of 1200"]
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.0, 24.23, 0.17, 0.33]
    assert ax.get_xticklabels()[1].get_text() == "25+ asked\n(of 25+)"
    plt.close(fig)


def test_over_draws_counts_a_minor_passing_one_draw_of_three_as_a_third():
    from agegate.convert.replay import over_draws

    def draw(ok: int, asked: int, decided: float, mae: float | None = 5.0) -> dict:
        return {"buyers": 10, "minors": 3, "adults_25plus": 5, "minors_decided_ok": ok, "adults_asked": asked,
                "merged": 0, "split_buyers": 1, "missed": 0, "decided_share": decided, "mae": mae}

    o = over_draws([draw(1, 2, 0.9), draw(0, 1, 1.0), draw(0, 3, 0.8, None)])
    assert o["draws"] == 3 and o["minors_decided_ok"] == pytest.approx(1 / 3, abs=1e-4)
    assert o["minors_ok_share"] == pytest.approx(1 / 9, abs=1e-6) and o["adults_asked_share"] == 0.4
    assert o["decided_share"] == 0.9 and o["mae"] == 5.0 and o["split_buyers"] == 1.0
    with pytest.raises(ValueError, match="different buyers"):
        over_draws([draw(1, 2, 0.9), {**draw(1, 2, 0.9), "minors": 4}])


def test_replay_rejects_a_bad_gap(tmp_path):
    r = CliRunner().invoke(cli, ["replay", str(UTK), "--gap", "9..2"])
    assert r.exit_code == 2 and "must not be empty" in r.output
    r = CliRunner().invoke(cli, ["replay", str(UTK), "--ages", "minors"])
    assert r.exit_code == 2 and "give A..B (years), e.g. 0..17" in r.output
    r = CliRunner().invoke(cli, ["replay", str(UTK), "--face-px", "60..400"])
    assert r.exit_code == 2 and "must lie in 16..300 pixels" in r.output
    for option, value in (("--refine-below", "1.5"), ("--min-score", "0"), ("--small-face-score", "1")):
        r = CliRunner().invoke(cli, ["replay", str(UTK), option, value])
        assert r.exit_code == 2 and option in r.output and "is not in the range" in r.output, option


def test_separation_probe_and_tracker_sweep_run_on_a_few_val_buyers(tmp_path):
    """The two instruments behind the tracker's Separation rule (benchmarks/), on 6 val buyers."""
    from agegate.benchmarks.separation_probe import DESCRIPTORS
    from agegate.benchmarks.separation_probe import main as probe
    from agegate.benchmarks.tracker_sweep import GRID
    from agegate.benchmarks.tracker_sweep import main as sweep

    data = ["--data", str(UTK), "--data", str(UTK.parent / "aaf"), "--buyers", "6"]
    r = CliRunner().invoke(probe, [*data, "--frames", "4", "--out", str(tmp_path / "probe.json")])
    assert r.exit_code == 0, r.output
    probe_json = json.loads((tmp_path / "probe.json").read_text())
    assert set(probe_json["descriptors"]) == set(DESCRIPTORS)
    for d in probe_json["descriptors"].values():
        assert d["median_within"] < d["median_between"]  # the next buyer is further than one's own frames
    r = CliRunner().invoke(sweep, [*data, "--out", str(tmp_path / "sweep.json")])
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "sweep.json").read_text())
    rules, motion = out["rules"], out["box_motion"]
    assert len(rules) == len(GRID) and all(x["buyers"] == 6 for x in rules)
    # 6 buyers x 20 frames, less the first frame of each: one buyer's head sways, it does not leap
    assert motion["within_buyer"]["frames"] > 80 and motion["within_buyer"]["shift"][0] < 0.1
    assert rules[0]["features"] and rules[0]["merged"] == 0  # the box's rule keeps 6 distinct buyers apart


def test_a_decision_on_a_track_that_never_showed_a_buyer_is_a_false_one():
    """A track of empty-till frames only (a false face) or with no frame recorded gives a false decision; a
    track that showed a buyer in any frame does not, however many empty frames it also held."""
    from collections import Counter
    from types import SimpleNamespace

    from agegate.convert.replay import false_decisions

    made = [SimpleNamespace(track_id=t) for t in (1, 2, 3)]
    frames = {1: Counter({None: 12}), 2: Counter({None: 9, 4: 1})}
    assert [d.track_id for d in false_decisions(made, frames)] == [1, 3]


@pytest.mark.slow  # the regression model is trained and converted (the session's `converted` fixture)
def test_curve_needs_a_distribution_model_and_says_so_before_replaying(tmp_path, converted):
    labels = labelled_chips(tmp_path / "set", ADULTS[:1])
    curve = tmp_path / "curve.png"
    r = CliRunner().invoke(cli, ["replay", str(labels), "--model", str(converted["int8"]), "--curve", str(curve)])
    assert r.exit_code != 0 and "--curve needs a distribution model" in r.output and not curve.exists()
    # eval says the same, also before its work
    r = CliRunner().invoke(cli, ["eval", "--model", str(converted["int8"]), "--data", str(labels), "--curve", str(curve)])
    assert r.exit_code != 0 and "--curve needs a distribution model" in r.output and not curve.exists()
    # without --curve the same model replays (it decides by its fused age)
    r = CliRunner().invoke(cli, ["replay", str(labels), "--model", str(converted["int8"]), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["buyers"] == 1 and "risk_curve" not in json.loads(r.output)


def test_covers_hide_the_eyes_or_the_lower_face_of_a_real_photo(tmp_path):
    """The drawn sunglasses darken the eye line and leave the mouth; the mask covers nose to chin and leaves
    the eyes; the photo itself is not changed."""
    import numpy as np

    from agegate.convert.covers import Cover, apply_cover
    from agegate.edge.detect import DetectorOptions, FaceDetector
    from agegate.edge.preprocess import decode_image

    rgb = decode_image(UTK / "images" / ADULTS[0])
    before = rgb.copy()
    face = FaceDetector(DetectorOptions.for_photos()).detect(rgb)[0]
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    eyes = (slice(int(min(ly, ry)) - 2, int(max(ly, ry)) + 3), slice(int(min(lx, rx)), int(max(lx, rx)) + 1))
    mouth_y = int(face.y0 + 0.85 * face.height)
    mouth = (slice(mouth_y - 3, mouth_y + 3), slice(int(face.x0 + 0.4 * face.width), int(face.x0 + 0.6 * face.width)))
    dark = apply_cover(rgb, face, Cover.SUNGLASSES)
    masked = apply_cover(rgb, face, Cover.MASK)
    assert dark[eyes].mean() < 40 < rgb[eyes].mean()  # the eye line is near black
    assert np.array_equal(dark[mouth], rgb[mouth]) and np.array_equal(masked[eyes], rgb[eyes])
    assert np.abs(masked[mouth].astype(int) - (168, 196, 222)).max() <= 2  # the mask's colour over the mouth
    assert np.array_equal(rgb, before) and apply_cover(rgb, face, Cover.NONE) is rgb


def test_replay_with_a_cover_records_it_and_still_decides(tmp_path, shipped_model):
    labels = labelled_chips(tmp_path / "set", ADULTS[:2] + CHILDREN[:2])
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0..3", "--frames", "15", "--cover", "mask", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["cover"] == "mask" and m["buyers"] == 4 and m["minors_decided_ok"] == 0
    r = CliRunner().invoke(cli, ["replay", str(labels), "--gap", "0..3", "--frames", "15", "--grey", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["grey"] is True and m["cover"] == "none" and m["buyers"] == 4 and m["minors_decided_ok"] == 0
    r = CliRunner().invoke(cli, ["replay", str(labels), "--cover", "hat"])
    assert r.exit_code == 2 and "'hat' is not one of" in r.output


def _patches(n: int):
    """n buyers with plain head patches of distinct grey levels: the queue's geometry, not faces."""
    import numpy as np

    from agegate.convert.replay import Buyer

    return [Buyer(i, f"{i}.jpg", 30.0, np.full((256, 256, 3), 40 + 30 * i, np.uint8)) for i in range(n)]


def test_a_queue_shows_the_next_buyer_waiting_smaller_then_stepping_up():
    from agegate.convert.replay import QUEUE_SCALE, STEP_FRAMES, ReplayOptions, till_frames

    buyers = _patches(4)
    alone = list(till_frames(buyers, ReplayOptions(frames=12, gap=(5, 5)), tail=3))
    queue = list(till_frames(buyers, ReplayOptions(frames=12, gap=(5, 5), queue=1.0), tail=3))
    assert all(len(s.placed) <= 1 for _, s in alone)
    assert sum(s.who is None for _, s in alone) == 3 * 5 + 3  # the gaps, then the tail
    assert sum(s.who is None for _, s in queue) == 3  # everyone waited: nobody leaves the till empty
    # every buyer at the till where they stood without a queue (the queue draws from its own generator) ...
    at_till = lambda frames: [s.placed[0] for _, s in frames if s.who is not None]  # noqa: E731
    assert all(p in at_till(queue) for p in at_till(alone))
    assert len([p for p in at_till(queue) if p not in at_till(alone)]) == 3 * STEP_FRAMES  # and stepping up
    # the next buyer waits beside the one at the till, smaller: further from the camera
    two = [s.placed for _, s in queue if len(s.placed) == 2]
    first = queue[0][1].who  # the buyers come in a seeded random order
    assert two and {b for (_, _), (b, _) in two} == {0, 1, 2, 3} - {first}
    assert all(QUEUE_SCALE[0] <= w.face / f.face <= QUEUE_SCALE[1] * 1.05 for (_, f), (_, w) in two)
    # stepping up: the face grows from where it waited to the till, frame by frame
    for b in {0, 1, 2, 3} - {first}:
        seen = [s.placed[0][1].face for _, s in queue if s.who == b]
        assert seen[:STEP_FRAMES] == sorted(seen[:STEP_FRAMES])


def test_a_grey_replay_is_the_colour_replay_with_its_colour_taken_away():
    """`--grey` (a monochrome camera): the same buyers, poses and camera noise frame by frame, each frame one
    luminance in three channels, that of the colour frame."""
    import numpy as np

    from agegate.convert.replay import ReplayOptions, till_frames

    buyers = [replace(b, patch=np.dstack([b.patch[..., 0], b.patch[..., 0] // 2, 255 - b.patch[..., 0]]))
              for b in _patches(3)]  # coloured patches: grey must change them
    colour = list(till_frames(buyers, ReplayOptions(frames=6, gap=(2, 2)), tail=2))
    grey = list(till_frames(buyers, ReplayOptions(frames=6, gap=(2, 2), grey=True), tail=2))
    assert [s for _, s in grey] == [s for _, s in colour]
    for (g, _), (c, _) in zip(grey, colour):
        assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
        assert np.array_equal(g[..., 0], cv2.cvtColor(c, cv2.COLOR_RGB2GRAY))
    assert not all(np.array_equal(g, c) for (g, _), (c, _) in zip(grey, colour))


def test_a_tracked_face_belongs_to_the_nearest_placed_buyer():
    from agegate.convert.replay import Pose, Shown
    from agegate.edge.detect import FaceBox

    front, behind = Pose(300, 240, 150), Pose(500, 220, 80)
    shown = Shown(0, ((0, front), (1, behind)))
    assert shown.owner(FaceBox(460, 180, 540, 260)) == 1 and shown.owner(FaceBox(230, 170, 370, 310)) == 0
    # one buyer shown: theirs, wherever the face is (a false face counts with them, as it always has)
    assert Shown(0, ((0, front),)).owner(FaceBox(0, 0, 10, 10)) == 0 and Shown(None).owner(FaceBox(0, 0, 9, 9)) is None
