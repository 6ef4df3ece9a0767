"""Edge room pieces without a model: decisions, tracking, events, config, stats, detection, crop."""
import sqlite3
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from agegate.edge.bands import band_of
from agegate.edge.config import validate
from agegate.edge.decision import DecisionPolicy, decide
from agegate.edge.detect import DetectorOptions, FaceBox, FaceDetector, crop_face, iou
from agegate.edge.errors import AgegateError, ConfigError
from agegate.edge.events import Event, EventStore
from agegate.edge.preprocess import PreprocessSpec, decode_image
from agegate.edge.stats import RuntimeMetrics, summarize_events
from agegate.edge.tracking import IoUTracker

from .conftest import UTK, pick


def test_bands_edges():
    assert [band_of(a) for a in (0, 12.9, 13, 17.99, 18, 24.5, 25, 64.9, 65, 110)] == [
        "0-12", "0-12", "13-17", "13-17", "18-24", "18-24", "25-34", "55-64", "65+", "65+"]


def test_decision_policy_and_reasons():
    from collections import Counter

    p = DecisionPolicy(id_threshold=25, min_frames=5, max_spread=10)
    assert decide(40, 10, 2, p) == ("ok", "")
    assert decide(22, 10, 2, p) == ("id_check", "")
    kind, why = decide(40, 3, 2, p)
    assert kind == "uncertain" and why.startswith("too_few_frames: 3 good frame(s) of 5")
    kind, why = decide(40, 3, 2, p, Counter({"blurred": 7, "face_too_small": 2}))
    assert why.startswith("blurred:") and "7 blurred, 2 face too small" in why  # the main cause first
    kind, why = decide(40, 10, 15, p)
    assert kind == "uncertain" and why.startswith("frames_disagree") and "15.0 years" in why
    assert decide(None, 0, 0, p)[0] == "uncertain"


def test_tracker_keeps_one_id_per_face_and_expires():
    t = IoUTracker(max_missed=2)
    a, b = FaceBox(10, 10, 110, 110), FaceBox(300, 10, 400, 110)
    ids = [tr.track_id for tr in t.match([a, b], 0)]
    moved = [FaceBox(14, 12, 114, 112), FaceBox(305, 8, 405, 108)]
    assert [tr.track_id for tr in t.match(moved, 1)] == ids
    for i in range(3):
        t.match([], 2 + i)
    assert {x.track_id for x in t.expire()} == set(ids) and not t.tracks


def test_a_face_moving_on_keeps_its_own_track_before_a_place_just_left():
    """The next buyer stepping up from the queue overlaps the place the last buyer left more than their own
    previous frame: a track seen in the last frame comes first, so they keep theirs."""
    t = IoUTracker()
    left, stepping = t.match([FaceBox(200, 150, 350, 300), FaceBox(290, 160, 410, 280)], 0)
    assert t.match([FaceBox(290, 160, 410, 280)], 1) == [stepping] and left.missed == 1  # the buyer has gone
    moved = FaceBox(240, 150, 380, 290)  # overlaps the place left (IoU 0.58) more than its own last box (0.47)
    assert t.match([moved], 2) == [stepping] and left.missed == 2


def test_track_fuses_with_median_window():
    t = IoUTracker(window=5)
    tr = t.match([FaceBox(0, 0, 100, 100)], 0)[0]
    for age in (30, 31, 90, 29, 30, 32):  # one wild frame
        tr.add(FaceBox(0, 0, 100, 100), 0, age)
    assert tr.fused_age() == 31 and tr.good_frames == 5  # window [31, 90, 29, 30, 32]: 90 is ignored


def test_a_clock_set_years_ahead_does_not_purge_the_retention_period(tmp_path, monkeypatch, caplog):
    """A wrong time server set a running box's clock to 2035: the next hourly purge deleted every decision of the
    last 90 days, exported or not. A purge now trusts the wall clock only as far as the steady clock ran since the
    last one (and a day); a clock that ran on with it, or was set back, is trusted as before."""
    import logging
    import types

    from agegate.edge import events

    clock = {"wall": time.time(), "steady": 1000.0}
    fake = types.SimpleNamespace(time=lambda: clock["wall"], monotonic=lambda: clock["steady"],
                                 strftime=time.strftime, gmtime=time.gmtime)
    monkeypatch.setattr(events, "time", fake)
    store = EventStore(tmp_path / "ev.sqlite", retention_days=90)
    day, start = 86400, clock["wall"]
    for i, age in enumerate((10, 60, 89)):  # days old
        store.add(Event(start - age * day, "b", i, 30.0, "25-34", 12, "ok", 5.0))
    with caplog.at_level(logging.WARNING, logger="agegate.edge"):
        clock["wall"], clock["steady"] = start + 9 * 365 * day, clock["steady"] + 3600  # an hour on: 2035
        assert store.purge() == 0 and store.count() == 3
        assert "ahead of the time the box has counted" in caplog.text
        caplog.clear()
        clock["steady"] += 3600  # the next hourly purge: the same, not said again
        assert store.purge() == 0 and store.count() == 3 and not caplog.records
        clock["wall"], clock["steady"] = start + 2 * day, clock["steady"] + 2 * day  # NTP sets it right
        caplog.clear()
        assert store.purge() == 1 and store.count() == 2 and not caplog.records  # 89 + 2 days old
        clock["wall"], clock["steady"] = start + 2 * day + 3600, clock["steady"] + 60  # an NTP step of an hour
        clock["wall"] -= 7 * day  # ... or the clock set back a week: purges less, trusted
        assert store.purge() == 0 and store.count() == 2 and not caplog.records
        clock["wall"], clock["steady"] = clock["wall"] + 45 * day, clock["steady"] + 45 * day  # the box runs on
        assert store.purge() == 1 and store.count() == 1  # the 60-day-old row is 100 days old, the other 50
    store.close()
    # a box without a battery clock starts in 1970: NTP setting it is not a jump ahead
    clock["wall"], clock["steady"] = 3600.0, 50.0
    store = EventStore(tmp_path / "ev.sqlite", retention_days=90)
    clock["wall"], clock["steady"] = start + 200 * day, 3700.0
    assert store.purge() == 1 and store.count() == 0
    store.close()


def test_events_store_wal_retention_and_no_images(tmp_path):
    db = tmp_path / "ev.sqlite"
    store = EventStore(db, retention_days=1)
    now = time.time()
    store.add(Event(now - 3 * 86400, "b", 1, 30.0, "25-34", 12, "ok", 5.0))
    store.add(Event(now, "b", 2, 16.0, "13-17", 12, "id_check", 5.0))
    assert store.purge() == 1 and store.count() == 1
    store.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    types = {r[2].upper() for r in con.execute("PRAGMA table_info(events)")}
    assert "BLOB" not in types  # no column can hold an image


def test_config_errors_name_the_key():
    ok = validate({"source": {"uri": "0"}, "model": {"path": "m.tflite"}})
    assert ok.api.host == "127.0.0.1" and ok.decision.id_threshold == 25.0
    with pytest.raises(ConfigError, match="unknown key source.urii"):
        validate({"source": {"urii": "0"}, "model": {"path": "m"}})
    with pytest.raises(ConfigError, match="model.threads must be int"):
        validate({"source": {"uri": "0"}, "model": {"path": "m", "threads": "two"}})
    with pytest.raises(ConfigError, match="missing required key model.path"):
        validate({"source": {"uri": "0"}, "model": {}})
    with pytest.raises(ConfigError, match="missing section \\[model\\]"):
        validate({"source": {"uri": "0"}})


def test_stats_by_band_hour_and_metrics_text():
    t = time.mktime((2026, 11, 23, 10, 15, 0, 0, 0, -1))
    ev = [Event(t, "b", i, a, band_of(a), 10, "ok" if a >= 25 else "id_check", 3.0) for i, a in
          enumerate([16, 23, 31, 45, 70])]
    s = summarize_events(ev, "hour")
    assert s["buyers"] == 5 and s["id_checks"] == 2 and s["by_band"]["13-17"] == 1
    assert list(s["by_hour"]) == ["2026-11-23 10:00"] and s["by_hour"]["2026-11-23 10:00"]["id_checks"] == 2
    # rows a box wrote before its clock was set land in one row, not on days in 1970
    unset = summarize_events(ev + [Event(3 * 86400.0, "b", 9, 30.0, "25-34", 10, "ok", 3.0)], "day")
    assert list(unset["by_day"]) == ["2026-11-23", "clock not set"] and unset["by_day"]["clock not set"]["buyers"] == 1
    m = RuntimeMetrics()
    m.observe("infer", 3.0)
    m.decision("ok")
    text = m.prometheus()
    assert 'agegate_decisions_total{decision="ok"} 1' in text and 'stage="infer",quantile="0.5"} 3.000' in text


def test_a_month_of_hours_is_drawn_on_a_time_axis_with_the_legend_beside_the_bars():
    """`edge stats --by hour --png` over a month once drew every hour with buyers as a named bar side by side (700
    labels over each other, a closed night no gap), and the band legend stood over the bars."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from agegate.edge.stats import draw_chart

    t0 = time.mktime((2026, 10, 1, 9, 30, 0, 0, 0, -1))
    ev = [Event(t0 + d * 86400 + h * 3600, "b", i, 40.0, "35-44", 10, "ok", 3.0)
          for i, (d, h) in enumerate((d, h) for d in range(30) for h in range(12))]
    ev.append(Event(3 * 86400.0, "b", 999, 30.0, "25-34", 10, "ok", 3.0))  # before the clock was set
    ev.append(Event(t0, "b", 998, None, None, 3, "uncertain", 3.0, "face_too_small"))  # no age, so no band
    fig = draw_chart(summarize_events(ev, "hour"), "hour")
    ax = fig.axes[0]
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    fig.canvas.draw()
    shown = [t for t in ax.get_xticklabels() if t.get_text()]
    assert 3 <= len(shown) <= 12
    x = sorted({p.get_x() for p in ax.patches})
    assert len(x) == 360 and max(np.diff(x)) > 0.5  # a bar an open hour; the night between days left as a gap
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1  # beside the axes, over no bar
    assert ax.get_title().endswith("\nnot drawn: 1 with no age band (uncertain, no face to age); 1 decided before the "
                                   "box's clock was set")
    plt.close(fig)
    fig = draw_chart(summarize_events(ev[:2], "band"), "band")  # two buyers: counted in whole numbers
    fig.canvas.draw()
    assert all(float(t.get_text().replace("\u2212", "-")).is_integer()
               for t in fig.axes[0].get_yticklabels() if t.get_text())
    plt.close(fig)
    fig = draw_chart(summarize_events(ev[-2:-1], "day"), "day")  # only a row from before the clock was set
    assert [t.get_text() for t in fig.axes[0].texts] == ["no buyer to draw per day"]  # not an empty day of 1970
    assert "(1 buyer, " in fig.axes[0].get_title()
    plt.close(fig)


def test_blazeface_finds_tight_chips_and_faces_in_scenes():
    det = FaceDetector(DetectorOptions(min_face=20))
    chips = [decode_image(UTK / "images" / n) for n in pick("test", 40, seed=9)]
    found = sum(bool(det.detect(c)) for c in chips)
    assert found >= 36, found  # tight crops: the padded retry rescues what the first look misses
    scene = np.full((480, 640, 3), 90, np.uint8)
    scene[140:340, 220:420] = chips[0]
    faces = det.detect(scene)
    assert len(faces) == 1
    f = faces[0]
    assert 160 < f.width < 240 and abs(f.center[0] - 320) < 25 and abs(f.center[1] - 240) < 25


def _framing(chip: np.ndarray, crop: np.ndarray) -> float:
    """How alike a crop is to the chip it shows: correlation of both at 64x64 (1: the same framing)."""
    return float(np.corrcoef(cv2.resize(crop, (64, 64)).astype(float).ravel(),
                             cv2.resize(chip, (64, 64)).astype(float).ravel())[0, 1])


def test_crop_reproduces_chip_framing():
    """Chips pasted into a scene, detected and cropped, look like the chips (the training framing).

    The real cost of the crop policy is measured with `agegate eval --detect` (README); this
    guards the geometry: a wrong margin or a swapped axis drops the correlation far below 0.6.
    """
    det = FaceDetector(DetectorOptions(min_face=20))
    corr = []
    for name in pick("test", 12, seed=11):
        chip = decode_image(UTK / "images" / name)
        scene = np.full((480, 640, 3), 90, np.uint8)
        scene[140:340, 220:420] = chip
        crop = crop_face(scene, det.detect(scene)[0], margin=PreprocessSpec().face_margin, out_size=200)
        corr.append(_framing(chip, crop))
    assert np.median(corr) > 0.6, corr
    shifted = _framing(chip, np.roll(chip, 60, axis=0))
    assert shifted < np.median(corr)  # the measure does tell a bad framing from a good one


def _framings(detectors: dict, side: int, frame_hw: tuple[int, int], seed: int, margin_px: int = 0):
    """UTKFace test chips shrunk to `side` px at random spots of a flat frame (`frame_hw`), kept `margin_px`
    from its edges: each detector's first face cropped and compared with the chip (`_framing`). Returns
    ({detector: [framing per chip]}, chips found by every detector); a chip some detector misses is left out."""
    margin = PreprocessSpec().face_margin
    rng = np.random.default_rng(seed)
    got, found = {key: [] for key in detectors}, 0
    h, w = frame_hw
    for name in pick("test", 16, seed=11 + seed):
        chip = cv2.resize(decode_image(UTK / "images" / name), (side, side), interpolation=cv2.INTER_AREA)
        frame = np.full((h, w, 3), 90, np.uint8)
        y = int(rng.integers(margin_px, h - side - margin_px))
        x = int(rng.integers(margin_px, w - side - margin_px))
        frame[y:y + side, x:x + side] = chip
        faces = {key: det.detect(frame) for key, det in detectors.items()}
        if all(faces.values()):
            found += 1
            for key, f in faces.items():
                got[key].append(_framing(chip, crop_face(frame, f[0], margin, out_size=side)))
    return got, found


def test_a_face_small_in_a_photo_is_framed_like_the_chip():
    """Chips shrunk to 120 px at random spots of a 1280x960 photo: the photo profile detects each face
    again on a region around it (refine_below), so the crop frames it as the chip does; the one-pass
    path (short range on the whole frame at 128 px) frames some of them badly (measured: median
    correlation 0.59, worst 0.01 against 0.70 and 0.40; the MAE it costs: benchmarks/uncropped_probe.py)."""
    got, found = _framings({"refined": FaceDetector(DetectorOptions.for_photos()),
                            "one pass": FaceDetector(DetectorOptions.for_photos(refine_below=0.0))},
                           120, (960, 1280), seed=0)
    assert found == 16
    assert np.median(got["refined"]) > 0.65 and min(got["refined"]) > 0.3, got["refined"]
    assert np.median(got["refined"]) > np.median(got["one pass"]) + 0.03, got


def test_refinement_keeps_large_faces_as_they_were():
    """A face that fills much of the frame is not detected again (its box is the one-pass box), by the photo
    and the camera profile alike: the training caches of face photos and a near buyer's crops stay as they were."""
    chip = cv2.resize(decode_image(UTK / "images" / pick("test", 1, seed=3)[0]), (320, 320))
    scene = np.full((480, 640, 3), 90, np.uint8)
    scene[80:400, 160:480] = chip  # the face about 0.4 of the frame's width: above both profiles' refine_below
    for options in (DetectorOptions.for_photos(), DetectorOptions()):
        face = FaceDetector(options).detect(scene)[0]
        assert face.corners == FaceDetector(replace(options, refine_below=0.0)).detect(scene)[0].corners


def test_the_second_look_is_blazeface_alone_and_never_takes_its_whole_region():
    """An All-Age-Faces photo (a girl in front of a building; train split): the whole-frame pass finds her
    (0.94) and a weak false face in the building (0.54, 33 px). The second look at that small face once ran
    the photo profile's Haar fallback on the region around it, which took the whole 108 px region for a face,
    a hair larger than hers, and her photo was aged as the building. BlazeFace alone finds nothing there, so
    the small face keeps its first box and hers is the largest."""
    photo = decode_image(UTK.parent / "aaf" / "images" / "00784A13.jpg")
    detector = FaceDetector(DetectorOptions.for_photos())
    first = detector._detect_frame(photo, min_score=0.5)
    assert len(first) == 2 and first[1].side < 40  # the girl, then the false face (the premise)
    faces = detector.detect(photo)
    girl = faces[0]
    assert girl.left_eye is not None and girl.center[0] < 80 and girl.center[1] > 120, faces
    assert all(f.side < 1.5 * g.side for f in faces for g in first if f.contains(*g.center)), faces


def test_the_second_look_at_a_face_never_takes_a_neighbour_in_its_place():
    """The second look searches three times a small face's side around it, so beside someone waiting behind the
    buyer at the till it sees the buyer's face too. Where it does not find the small face again (half hidden;
    here a box on the grey beside a chip, as a sure detection of it would be), the small face keeps its first
    box: it is not replaced by the buyer's face, which would then be in the frame twice (a split buyer)."""
    frame = np.full((480, 640, 3), 96, np.uint8)
    frame[140:340, 160:360] = cv2.resize(decode_image(UTK / "images" / pick("test", 1, seed=3)[0]), (200, 200))
    detector = FaceDetector(DetectorOptions())
    buyer = detector.detect(frame)[0]
    waiting = FaceBox(280, 180, 400, 300, score=0.9)  # under 128 px: looked at again; the buyer's centre not in it
    assert waiting.side < detector.options.refine_below * 640 and not waiting.contains(*buyer.center)
    region = detector._faces_around(frame, waiting)  # what the square around it shows: the buyer's face
    assert any(iou(f.corners, buyer.corners) > 0.5 for f in region)
    assert detector._refine(frame, waiting) == waiting


def test_turn_says_how_far_and_which_way_a_head_is_turned():
    """`FaceBox.turn`: the nose tip's offset from the eyes' midpoint along the eye line, in eye distances, so a
    face's size, place and tilt do not change it; None without the key points (the Haar fallback gives none)."""
    face = FaceBox(0, 0, 100, 100, left_eye=(30.0, 40.0), right_eye=(70.0, 40.0), nose=(50.0, 60.0))
    assert face.turn == 0.0
    turned = replace(face, nose=(60.0, 60.0))
    assert turned.turn == pytest.approx(0.25) and replace(face, nose=(40.0, 60.0)).turn == pytest.approx(-0.25)
    assert turned.scaled(3).turn == pytest.approx(0.25) and turned.shifted(-7, 11).turn == pytest.approx(0.25)
    tilted = FaceBox(0, 0, 100, 100, left_eye=(30.0, 30.0), right_eye=(70.0, 70.0), nose=(50.0, 70.0))
    assert tilted.turn == pytest.approx(0.25)  # along the eye line, not the image's x axis
    assert replace(face, nose=None).turn is None and FaceBox(0, 0, 10, 10).turn is None


def test_blazeface_turn_reads_a_turned_face_and_its_mirror_the_other_way():
    """On real photos (All-Age-Faces, looked at: a girl facing the camera, and one turned about a third of the
    way to profile), BlazeFace's nose point gives a small turn for the one and a large one for the other, and
    the mirrored photo the same turn the other way."""
    detector = FaceDetector(DetectorOptions.for_photos())
    turns = {}
    for name in ("00008A02.jpg", "00018A02.jpg"):
        rgb = decode_image(UTK.parent / "aaf" / "images" / name)
        turns[name] = (detector.detect(rgb)[0].turn, detector.detect(np.ascontiguousarray(rgb[:, ::-1]))[0].turn)
    (front, front_m), (side, side_m) = turns["00008A02.jpg"], turns["00018A02.jpg"]
    assert abs(front) < 0.05 and abs(front_m) < 0.05, turns
    assert abs(side) > 0.25 and side * side_m < 0 and abs(abs(side) - abs(side_m)) < 0.08, turns


def test_a_far_buyer_is_framed_like_the_chip():
    """Chips shrunk to 90 px in a 640x480 camera frame (a camera mounted far from the till: 18 px of short
    range's 128 px view): the camera profile detects each face again around it (CAMERA_REFINE_BELOW), so the
    crop frames it as the chip does more often than one pass (the decisions it changes, on 400 val buyers per
    face size: benchmarks/results/far-camera/, README "How far the camera may be"). The second look only
    looks at faces found: chips the first pass misses are left out."""
    got, found = _framings({"refined": FaceDetector(DetectorOptions()),
                            "one pass": FaceDetector(DetectorOptions(refine_below=0.0))},
                           90, (480, 640), seed=1, margin_px=40)
    assert found >= 10, got
    assert np.median(got["refined"]) > np.median(got["one pass"]) + 0.08, got


def test_a_face_whose_first_box_reads_just_over_the_line_is_framed_by_the_second_look_when_that_finds_it_small():
    """`refine_margin` (measured, not the box's default: benchmarks/results/camera-refine-margin/). Short range's
    first box of a face near the camera's line (128 px) is coarse: the same face reads over the line on one frame
    and under it on the next, and its box (the crop, the look) flips with it. With a margin of 1.25 a first box of
    128-160 px is looked at again: the second look's face is kept when it measures the face under the line, else
    the first box. UTKFace chips of 130-175 px in a 640x480 frame: both happen, and with the margin at 1 (the
    box's default) every such face keeps its first box."""
    box = DetectorOptions()
    assert box.refine_margin == 1.0 and DetectorOptions.for_photos().refine_margin == 1.0
    det, one_pass = FaceDetector(replace(box, refine_margin=1.25)), FaceDetector(replace(box, refine_below=0.0))
    default = FaceDetector(box)
    line = box.refine_below * 640
    seen = {"second look": 0, "first box": 0}
    for name in pick("test", 16, seed=5):
        chip = decode_image(UTK / "images" / name)
        for px in range(130, 176, 5):
            frame = np.full((480, 640, 3), 90, np.uint8)
            frame[150:150 + px, 250:250 + px] = cv2.resize(chip, (px, px), interpolation=cv2.INTER_AREA)
            first = one_pass.detect(frame)
            if len(first) != 1 or not line <= first[0].side < line * 1.25:
                continue
            assert default.detect(frame) == first, (name, px)
            again = det._look_again(frame, first[0])
            small = again is not None and again.side < line
            assert det.detect(frame) == ([again] if small else first), (name, px)
            seen["second look" if small else "first box"] += 1
    assert seen["second look"] >= 3 and seen["first box"] >= 10, seen


def test_a_far_face_under_the_score_is_kept_only_when_the_second_look_finds_it():
    """UTKFace chips shrunk to 80 px in a 640x480 camera frame: short range, seeing the whole frame at 128 px,
    scores most of them under its 0.5 (measured: 5 of 32 found). With the camera's `small_face_score` (0.35)
    such a face gets the second look and is kept only if that look finds it at 0.5, inside the first box: more
    chips are found than with the setting off, each face at 0.5 or more and on the chip. Without the second
    look (refine_below 0) the setting does nothing."""
    options = DetectorOptions()
    assert options.small_face_score < options.min_score
    photos = DetectorOptions.for_photos()
    assert photos.small_face_score >= photos.min_score  # photos keep it off: measured on camera frames only
    off = replace(options, small_face_score=options.min_score)
    detectors = {"off": FaceDetector(off), "low": FaceDetector(options),
                 "one pass": FaceDetector(replace(off, refine_below=0.0)),
                 "low, one pass": FaceDetector(replace(options, refine_below=0.0))}
    rng = np.random.default_rng(0)
    found = {key: 0 for key in detectors}
    for name in pick("test", 32, seed=12):
        chip = cv2.resize(decode_image(UTK / "images" / name), (80, 80), interpolation=cv2.INTER_AREA)
        frame = np.full((480, 640, 3), 90, np.uint8)
        y, x = int(rng.integers(40, 360)), int(rng.integers(40, 520))
        frame[y:y + 80, x:x + 80] = chip
        faces = {key: det.detect(frame) for key, det in detectors.items()}
        for key, f in faces.items():
            found[key] += bool(f)
        assert faces["low, one pass"] == faces["one pass"]
        for f in faces["low"]:
            assert f.score >= 0.5 and x <= f.center[0] <= x + 80 and y <= f.center[1] <= y + 80, (name, f)
    assert found["low"] >= found["off"] + 5, found


def test_a_weak_second_box_on_a_buyer_does_not_copy_their_face():
    """A buyer's sure face (100 px) and, beside it, a weak box around the same head that the whole frame's
    suppression lets through (their overlap is small): the second look inside the weak box finds the same face
    again. Kept, the frame would hold the face twice and the tracker split the buyer (what the first try of
    `small_face_score` did at 85-110 px: benchmarks/results/far-camera/rule-small-face-score-dedup.md); the
    copy is dropped, sure or weak, and a weak box with a face of its own is kept."""
    chip = cv2.resize(decode_image(UTK / "images" / pick("test", 1, seed=3)[0]), (100, 100))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[190:290, 270:370] = chip
    frame[60:160, 460:560] = chip  # a second person, whose only detection is weak
    det = FaceDetector(DetectorOptions())  # the camera profile: small_face_score 0.35
    sure = [f for f in FaceDetector(DetectorOptions(refine_below=0.0)).detect(frame) if f.center[0] < 400]
    assert len(sure) == 1
    copy = FaceBox(300.0, 225.0, 420.0, 345.0, 0.4)  # chin, neck and shoulder of the same buyer: IoU < 0.3
    other = FaceBox(450.0, 50.0, 570.0, 170.0, 0.4)
    assert iou(sure[0].corners, copy.corners) < 0.3 and copy.contains(*sure[0].center)
    assert det._refine(frame, copy) is not None  # alone, the second look "confirms" the copy
    got = det._refined(frame, [sure[0], copy, other])
    assert len(got) == 2, got
    assert sum(1 for f in got if f.center[0] < 400) == 1 and sum(1 for f in got if f.center[0] > 400) == 1
    # The same for a second box scored sure (two sure first boxes of one head, of different sizes: a buyer at
    # 105-140 px did this on replayed till frames and was split), whichever comes first.
    sure_copy = replace(copy, score=0.9)
    for faces in ([sure[0], sure_copy], [sure_copy, sure[0]]):
        assert len(det._refined(frame, faces)) == 1, det._refined(frame, faces)
    # A small sure box on the buyer's chin, inside their box: a face does not hold another face, so it goes too,
    # whatever its second look finds (a replayed buyer at 150-170 px had one, its first box kept: split).
    x, y = sure[0].center
    chin = FaceBox(x - 20, y + 5, x + 20, y + 45, 0.9)
    assert sure[0].contains(*chin.center) and iou(sure[0].corners, chin.corners) < 0.3
    assert det._refined(frame, [sure[0], chin]) == [det._refine(frame, sure[0])]


def test_tiles_find_faces_too_small_for_the_whole_photo():
    """All-Age-Faces photos shrunk to 110 px in the probe's 1280x960 scene: a face there is under 13 px
    of short range's 128 px view of the whole photo, and one pass (with the padded retry and Haar) misses
    several; the photo profile then searches overlapping tiles and finds more, each inside the photo
    placed (measured on val: benchmarks/uncropped_probe.py, benchmarks/PHOTOS.md)."""
    from agegate.benchmarks.uncropped_probe import place_in_scene
    from agegate.convert.evaluate import select_records

    records = select_records(str(UTK.parent / "aaf"), "auto", None, "test")
    tiled = FaceDetector(DetectorOptions.for_photos())
    whole = FaceDetector(DetectorOptions.for_photos(tiles=0))
    assert tiled.options.tiles > 1
    missed = {"whole": 0, "tiled": 0}
    for k, i in enumerate(np.random.default_rng(5).choice(len(records), 40, replace=False)):
        img = decode_image(records[i].path)
        scene = place_in_scene(img, 110, np.random.default_rng([1, k]))
        blank = place_in_scene(np.full_like(img, 7), 110, np.random.default_rng([1, k]))  # the same spot
        ys, xs = np.nonzero((scene != blank).any(2))
        missed["whole"] += not whole.detect(scene)
        faces = tiled.detect(scene)
        missed["tiled"] += not faces
        if faces:  # the face found lies in the placed photo, not in the scene around it
            assert xs.min() - 5 <= faces[0].center[0] <= xs.max() + 5 and ys.min() - 5 <= faces[0].center[1] <= ys.max() + 5
    assert missed["whole"] >= 4 and missed["tiled"] <= missed["whole"] - 3, missed


def test_tiles_leave_photos_with_a_face_found_and_camera_frames_as_they_were():
    """Tiles are searched only when the whole frame shows no face: a chip in a scene gets the box it got
    before; the camera profile never tiles (a till face is large, and an empty frame must stay cheap)."""
    chip = decode_image(UTK / "images" / pick("test", 1, seed=3)[0])
    scene = np.full((960, 1280, 3), 90, np.uint8)
    scene[300:500, 500:700] = chip
    a = FaceDetector(DetectorOptions.for_photos()).detect(scene)
    b = FaceDetector(DetectorOptions.for_photos(tiles=0)).detect(scene)
    assert a == b and len(a) == 1
    assert DetectorOptions().tiles == 0


def test_a_doubted_face_holding_a_smaller_surer_face_gives_way_to_it():
    """Short range reports a plain scene around a face too small for it as one large face scored 0.5-0.6;
    the tiles find the real face inside it. A face does not hold another face, so the doubted one goes and
    the small one stands in; a confident face, one holding nothing, or one holding a part of a face that a
    tile took for a face (a chin, an eye: scored under SURE_FACE) stays as it was."""
    from agegate.edge.detect import DOUBT_BELOW, SURE_FACE, FaceBox, _without_containers

    small = FaceBox(500, 400, 560, 460, 0.95)
    scene_face = FaceBox(200, 100, 900, 800, DOUBT_BELOW - 0.1)
    assert _without_containers([scene_face], [small]) == [small]
    sure = FaceBox(200, 100, 900, 800, DOUBT_BELOW + 0.1)
    assert _without_containers([sure], [small]) == [sure]
    beside = FaceBox(950, 100, 1010, 160, 0.95)  # outside the large box: nothing held
    assert _without_containers([scene_face], [beside]) == [scene_face]
    half = FaceBox(300, 200, 650, 550, 0.95)  # half the large box's side: a face may be found twice, not held
    assert _without_containers([scene_face], [half]) == [scene_face]
    chin = FaceBox(500, 400, 560, 460, SURE_FACE - 0.05)
    assert _without_containers([scene_face], [chin]) == [scene_face]
    assert _without_containers([], [small]) == [small]


def _looks(image_distance: float, features: bool):
    """Two synthetic Looks whose image part is `image_distance` apart (all of it in the HOG part), with
    opposite model features when `features`."""
    from agegate.edge.tracking import HOG_WEIGHT, Look

    r = np.random.default_rng(0)
    grey, colour = r.normal(size=256).astype(np.float32), np.abs(r.normal(size=32)).astype(np.float32)
    a, b = r.normal(size=(2, 1764))
    a /= np.linalg.norm(a)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    c = 1 - image_distance / HOG_WEIGHT  # cosine that puts the shapes image_distance apart
    other = c * a + np.sqrt(1 - c * c) * b
    f = r.normal(size=64).astype(np.float32)
    f /= np.linalg.norm(f)
    return (Look(grey, colour, a.astype(np.float32), f if features else None),
            Look(grey, colour, other.astype(np.float32), -f if features else None))


def test_a_lookalike_with_other_features_is_a_new_buyer():
    """A look-alike stepping into the last buyer's place (image part just under the line) is told apart
    by the age model's features; without them the tracker cannot, and merges the two."""
    from agegate.edge.tracking import Separation

    rule = Separation()
    box = FaceBox(100, 100, 260, 260)
    near = rule.appearance_change - 0.02
    a, b = _looks(near, features=True)
    assert rule.distance(a, b)[0] > rule.distance(*_looks(near, features=False))[0]
    assert rule.differs(a, b) and not rule.differs(*_looks(near, features=False)) and not rule.differs(a, a)
    for with_features in (True, False):
        first_look, next_look = _looks(near, with_features)
        t = IoUTracker()
        first = t.match([box], 0.0, [first_look])[0]
        for i in range(1, 6):  # the first buyer, steady
            t.match([box], i / 15, [first_look])
        ids = [t.match([box], (6 + i) / 15, [next_look])[0].track_id for i in range(rule.change_frames + 2)]
        if with_features:
            assert first.ended and ids[-1] != first.track_id and ids[-1] == ids[rule.change_frames - 1]
        else:
            assert ids == [first.track_id] * len(ids)


def test_a_weak_detection_does_not_teach_the_track_its_look():
    """A weak detection (the next buyer half in view) stays with the track but leaves its look as it was."""
    from agegate.edge.tracking import MIN_SPLIT_SCORE

    a, b = _looks(0.9, features=False)
    t = IoUTracker()
    tr = t.match([FaceBox(100, 100, 260, 260)], 0.0, [a])[0]
    same = t.match([FaceBox(100, 100, 260, 260, score=MIN_SPLIT_SCORE - 0.1)], 0.1, [b])[0]
    assert same is tr and np.array_equal(tr.look.shape, a.shape)


def test_a_face_that_leaps_into_the_place_is_held_to_a_stricter_line():
    """Looks just under the line: a face in the same place is the same buyer, but one whose box leapt
    (the next buyer stepping in a little further left and closer) is a new one; a one-frame size flip
    of the detector's box that comes back is not."""
    from agegate.edge.tracking import Separation

    rule = Separation()
    here, there = FaceBox(100, 100, 260, 260), FaceBox(160, 90, 340, 270)  # 0.4 face sizes over, 1.125x
    assert rule.jumped(here, there) and not rule.jumped(here, FaceBox(104, 98, 264, 258))
    closer = FaceBox(90, 90, 300, 300)  # 1.31x the size, same centre
    assert rule.jumped(here, closer) and not Separation(jump_scale=1.5).jumped(here, closer)
    first_look, next_look = _looks(rule.appearance_change - 0.1, features=False)

    def show(boxes_and_looks):
        t = IoUTracker(separation=rule)
        first = t.match([here], 0.0, [first_look])[0]
        for i in range(1, 6):
            t.match([here], i / 15, [first_look])
        ids = [t.match([b], (6 + i) / 15, [look])[0].track_id for i, (b, look) in enumerate(boxes_and_looks)]
        return first, ids

    n = rule.change_frames + 2
    first, ids = show([(there, next_look)] * n)
    assert first.ended and ids[-1] != first.track_id
    first, ids = show([(here, next_look)] * n)  # the same look without the leap: one buyer
    assert not first.ended and ids == [first.track_id] * n
    first, ids = show([(closer, next_look)] + [(here, first_look)] * (n - 1))  # a box that flips for a frame
    assert not first.ended and ids == [first.track_id] * n


def test_separation_verdicts_same_different_far():
    """One rule says what two views are: under the line the same person; over it someone else; over
    `far` x the line someone else even if their own frames vary. A leap lowers the line (jump_change);
    ages read twice apart are different people even with one look."""

    from agegate.edge.tracking import LookVerdict, Separation

    rule = Separation()
    line = rule.appearance_change
    assert rule.compare(*_looks(line - 0.1, features=False)) is LookVerdict.SAME
    assert rule.compare(*_looks(line + 0.1, features=False)) is LookVerdict.DIFFERENT
    assert rule.compare(*_looks(rule.far * line + 0.1, features=False)) is LookVerdict.FAR
    a, b = _looks(line * rule.jump_change + 0.05, features=False)
    assert rule.compare(a, b) is LookVerdict.SAME and rule.compare(a, b, jumped=True) is LookVerdict.DIFFERENT
    look, _ = _looks(0.0, features=True)
    adult, teen = replace(look, log_age=float(np.log1p(40))), replace(look, log_age=float(np.log1p(16)))
    assert rule.compare(adult, teen) is LookVerdict.DIFFERENT and rule.differs(adult, teen)


def test_a_face_the_model_reads_much_younger_is_a_new_buyer_however_alike():
    """A teenager stepping into a decided adult's place with the same look (image part and features) is
    told apart by the model's age reading of each view; a reading within the line is the same buyer."""

    from agegate.edge.tracking import Separation

    rule = Separation()
    box = FaceBox(100, 100, 260, 260)
    look, _ = _looks(0.0, features=True)
    adult = replace(look, log_age=float(np.log1p(40)))
    assert rule.aged_apart(adult, replace(look, log_age=float(np.log1p(16))))
    assert not rule.aged_apart(adult, replace(look, log_age=float(np.log1p(34))))
    assert not rule.aged_apart(adult, look) and not Separation(age_change=None).aged_apart(
        adult, replace(look, log_age=float(np.log1p(16))))
    for reading, new_buyer in ((16, True), (34, False)):
        t = IoUTracker(separation=rule)
        first = t.match([box], 0.0, [adult])[0]
        for i in range(1, 6):
            t.match([box], i / 15, [adult])
        other = replace(look, log_age=float(np.log1p(reading)))
        ids = [t.match([box], (6 + i) / 15, [other])[0].track_id for i in range(rule.change_frames + 2)]
        assert first.ended is new_buyer and (ids[-1] != first.track_id) is new_buyer


def test_quiet_fds_from_many_threads_leaves_stdout_where_it_was():
    """Detectors made per worker thread each silence LiteRT's load message by redirecting fds 1 and 2;
    overlapping redirects once left stdout on a closed temp file and `eval --json` printed nothing. All
    threads enter at once here and stay a while: afterwards fds 1 and 2 are the files they were."""
    import os
    import threading

    from agegate.edge.quiet import quiet_fds

    before = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
    start = threading.Barrier(8)

    def one():
        start.wait()
        with quiet_fds():
            time.sleep(0.02)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)] == before


def test_setup_verdict_asks_for_a_face_the_box_was_measured_to_judge():
    """Under 48 px the box does not age a face; from 48 to 85 it does but was measured to find and decide fewer
    buyers and ask more adults for ID (README, "How far the camera may be"): the set-up view says so, with the
    fix, before it says "good"."""
    from agegate.edge.setup_view import SETUP_FACE_PX, SetupStatus, verdict

    def at(px):
        return verdict(SetupStatus(frames=1, face=True, face_px=px, min_face_px=48, sharpness=50.0, min_sharpness=10.0,
                                   brightness=120.0, facing=True))

    assert at(40)[0] == "face too small" and not at(40)[2]
    kind, fix, ok = at(60)
    assert kind == "face small" and not ok and "move the camera closer" in fix and f"{SETUP_FACE_PX} px" in fix
    assert at(SETUP_FACE_PX) == ("good", at(200)[1], True)
    # eyes behind dark glasses: the box would not age the face, and the view says so rather than "good"
    dark = verdict(SetupStatus(frames=1, face=True, face_px=200, min_face_px=48, sharpness=50.0, min_sharpness=10.0,
                               brightness=120.0, facing=True, eye_light=0.2, min_eye_light=0.3))
    assert dark[0] == "eyes hidden" and "dark glasses" in dark[1] and not dark[2]
    # a face turned past MAX_SETUP_TURN: the camera is not where buyers look (measured: turned_faces.py)
    from agegate.edge.setup_view import MAX_SETUP_TURN, _facing

    side = FaceBox(0, 0, 200, 200, left_eye=(60.0, 80.0), right_eye=(140.0, 80.0), nose=(100.0 + 80 * 0.3, 120.0))
    assert not _facing(side) and _facing(replace(side, nose=(100.0 + 80 * MAX_SETUP_TURN, 120.0)))
    assert _facing(replace(side, nose=None)) is None  # no key points: not judged
    away = verdict(SetupStatus(frames=1, face=True, face_px=200, min_face_px=48, sharpness=50.0, min_sharpness=10.0,
                               brightness=120.0, facing=_facing(side)))
    assert away[0] == "face turned away" and not away[2]



def test_a_camera_on_its_side_is_turned_upright_and_the_set_up_view_says_so(tmp_path):
    """A camera mounted on its side gives faces lying on theirs: the detector's eye line reads steep on a real
    portrait turned a quarter (level upright), the set-up view names the fix (source.rotate), and a box told
    `rotate` turns every frame before it looks (a folder's image comes out a quarter turned, pixel for pixel)."""
    from agegate.edge.capture import FrameSource, SourceOptions, turned
    from agegate.edge.default_model import assets_dir
    from agegate.edge.setup_view import MAX_SETUP_ROLL, SetupStatus, lean, verdict

    rgb = decode_image(sorted((assets_dir() / "demo").glob("*.jpg"))[1])
    detector = FaceDetector(DetectorOptions())
    upright = max(detector.detect(rgb), key=lambda f: f.area)
    on_side = max(detector.detect(turned(rgb, 90)), key=lambda f: f.area)
    assert abs(upright.roll) < 15 and abs(on_side.roll) > MAX_SETUP_ROLL, (upright.roll, on_side.roll)
    assert FaceBox(0, 0, 9, 9, left_eye=(1.0, 1.0), right_eye=(1.0, 1.0)).roll is None
    assert FaceBox(0, 0, 9, 9, left_eye=(8.0, 5.0), right_eye=(2.0, 5.0)).roll == 0  # eyes in either order: level

    def status(roll):
        return verdict(SetupStatus(frames=1, face=True, face_px=200, min_face_px=48, sharpness=50.0,
                                   min_sharpness=10.0, brightness=120.0, facing=True, roll=roll))

    side = status(on_side.roll)
    assert side[0] == "picture on its side" and "source.rotate" in side[1] and not side[2]
    assert status(upright.roll)[0] == "good"
    assert "source.rotate = 180" in verdict(SetupStatus(frames=1, face=False))[1]  # upside down: no face found
    # the page reads the median lean of the last frames, whichever way each leans: one loose frame does not flip it
    assert lean([85.0, -88.0, 30.0, 70.0, -80.0]) == 80.0 and lean([]) is None and lean([None]) is None

    assert np.array_equal(turned(turned(rgb, 90), 270), rgb) and turned(rgb, 0) is rgb
    with pytest.raises(ValueError, match="0, 90, 180 or 270"):
        turned(rgb, 45)
    small = rgb[:30, :50]
    cv2.imwrite(str(tmp_path / "one.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    with FrameSource(str(tmp_path), SourceOptions(rotate=90)) as src:
        frame = src.read(timeout=5)
    assert frame is not None and np.array_equal(frame.rgb, cv2.rotate(small, cv2.ROTATE_90_CLOCKWISE))


def test_a_damaged_events_database_is_kept_aside_and_the_box_goes_on(tmp_path):
    """A file that is not a database where events.path points (a failed card, a file copied over it) once stopped
    the box at start, with advice about permissions. It is now moved aside, kept, and a new database started
    whose ids continue after the export watermark (restarting at 1 would hide new rows from `edge export`)."""
    from agegate.edge.doctor import _events

    db = tmp_path / "events.sqlite"
    junk = bytes(range(256)) * 20
    db.write_bytes(junk)
    (tmp_path / "events.sqlite.export.json").write_text('{"last_id": 41, "out": "/x"}')
    assert not _events(db).critical and "is damaged" in _events(db).detail
    store = EventStore(db, retention_days=0)
    store.add(Event(time.time(), "box", 1, 30.0, "25-34", 10, "ok", 1.0))
    store.close()
    assert store.set_aside is not None and store.set_aside.read_bytes() == junk
    assert sqlite3.connect(db).execute("SELECT id FROM events").fetchall() == [(42,)]
    (tmp_path / "nowhere").write_text("a file where the folder should be")
    with pytest.raises(AgegateError, match="permissions and free space"):  # the path's problem stays an error
        EventStore(tmp_path / "nowhere" / "events.sqlite")


def test_decisions_before_the_clock_is_set_are_held_and_timed_by_the_steady_clock(tmp_path, monkeypatch):
    """A box without a battery clock decides from boot at 1970 until NTP sets its clock: those rows once went
    into the events (and the chain's report) on days the buyers never came. They are now held with their time
    on the steady clock and written with their true time once the clock is set; if it never is, close writes
    them as they are (nothing lost)."""
    import agegate.edge.events as events

    real = time.time
    skew = real() - 86400.0 * 3  # the boot clock: 1970-01-04 while the world is at real()
    monkeypatch.setattr(events.time, "time", lambda: real() - skew)
    store = EventStore(tmp_path / "ev.sqlite", retention_days=90)
    for i in range(3):
        store.add(Event(events.time.time(), "box", i, 30.0, "25-34", 10, "ok", 1.0))
    assert store.count() == 0 and len(store.unclocked) == 3
    time.sleep(0.2)
    monkeypatch.setattr(events.time, "time", real)  # NTP sets the clock
    store.add(Event(real(), "box", 3, 40.0, "35-44", 10, "ok", 1.0))
    rows = store.all()
    assert [e.track_id for e in rows] == [0, 1, 2, 3]
    assert all(real() - 5 < e.ts <= real() for e in rows) and rows[2].ts <= rows[3].ts - 0.15
    store.close()

    monkeypatch.setattr(events, "MAX_PENDING", 4)  # days without NTP fill what is held: the oldest is written
    full = EventStore(tmp_path / "ev3.sqlite", retention_days=0)
    monkeypatch.setattr(events.time, "time", lambda: 3 * 86400.0)
    for i in range(6):
        full.add(Event(3 * 86400.0 + i, "box", i, 30.0, "25-34", 10, "ok", 1.0))
    assert full.count() == 2 and len(full.unclocked) == 4 and full.lost == 0
    full.close()
    monkeypatch.setattr(events.time, "time", real)
    assert len(events.read_events(tmp_path / "ev3.sqlite")) == 6  # nothing lost

    never = EventStore(tmp_path / "ev2.sqlite", retention_days=0)
    monkeypatch.setattr(events.time, "time", lambda: 3 * 86400.0)
    never.add(Event(3 * 86400.0, "box", 9, 30.0, "25-34", 10, "ok", 1.0))
    never.close()
    monkeypatch.setattr(events.time, "time", real)
    assert [e.ts for e in events.read_events(tmp_path / "ev2.sqlite")] == [3 * 86400.0]


def test_a_stream_password_is_never_shown(caplog):
    """Cameras take credentials in the URL; the box printed it whole at start, in every retry warning, in
    /healthz's problems and in doctor's report. The password is now shown as ***."""
    from agegate.edge.capture import FrameSource, SourceOptions, shown_source

    assert shown_source("rtsp://admin:s3cr3t@10.0.0.5:554/live?x=1") == "rtsp://admin:***@10.0.0.5:554/live?x=1"
    assert shown_source("http://cam.local/mjpg") == "http://cam.local/mjpg"
    assert shown_source("rtsp://token@10.0.0.5/") == "rtsp://token@10.0.0.5/"  # a user alone is no secret
    with caplog.at_level("WARNING", logger="agegate.edge"):
        src = FrameSource("rtsp://admin:s3cr3t@127.0.0.1:9/live",
                          SourceOptions(retry_forever=False, open_timeout_tries=2, backoff_start=0.05))
        assert src.read(timeout=20) is None
        src.close()
    assert "s3cr3t" not in (src.error or "") + caplog.text and "admin:***@127.0.0.1" in src.error


def test_a_camera_that_never_opens_repeats_opencvs_warnings_only_on_its_first_try(capfd):
    """OpenCV prints its own warnings (to fd 2, from C++) on every failed open: a box retrying an unplugged camera
    every 10 s repeated them all day under agegate's one-line warning. The first try's are kept (they may say why)."""
    import cv2

    from agegate.edge.capture import FrameSource, SourceOptions

    capfd.readouterr()
    cv2.VideoCapture(57).release()  # no /dev/video57 here: what one try prints on this OpenCV build
    once = capfd.readouterr().err.count("video57")
    src = FrameSource("57", SourceOptions(retry_forever=False, open_timeout_tries=4, backoff_start=0.01))
    assert src.read(timeout=20) is None
    src.close()
    assert "cannot open after 4 tries" in src.error
    assert capfd.readouterr().err.count("video57") == once


def test_a_stalled_pipeline_is_seen_though_the_wall_clock_jumped_back(monkeypatch):
    """/healthz measured 'no frame for N s' on the wall clock: NTP setting it back an hour (a box whose clock ran
    ahead) hid a stalled pipeline for that hour. It is measured on the steady clock now."""
    import agegate.edge.stats as stats

    m = RuntimeMetrics()
    m.frame_done(0)
    real = time.time
    monkeypatch.setattr(stats.time, "time", lambda: real() - 3600)
    time.sleep(0.2)
    h = m.health(stale_s=0.1)
    assert h["status"] == "degraded" and any("no frame processed for" in p for p in h["problems"])


def test_progress_is_a_bar_in_a_terminal_and_a_line_a_minute_in_a_log():
    """A log (not a terminal) gets a plain line at most every minute (a fake clock here): a bar redrawn with
    carriage returns there was one ever-growing line, and hidden there a 40-minute calibrate said nothing."""
    import io

    from agegate.edge.progress import LogLines, progress

    log = io.StringIO()
    now = [0.0]
    lines = LogLines(120, "replay", "buyer", 60.0, lambda line: log.write(line + "\n"), clock=lambda: now[0])
    with lines:
        for _ in range(120):
            now[0] += 2.0  # a buyer every 2 s: a line every 30 buyers
            lines.update()
    said = log.getvalue().splitlines()
    assert said[0] == "replay: 30/120 buyers (25 %), 1.0 min, about 3.0 min left" and len(said) == 4
    assert "\r" not in log.getvalue()
    assert isinstance(progress(10, "eval", "img", stream=io.StringIO()), LogLines)  # not a terminal
    assert not isinstance(progress(10, "eval", "img", show=False), LogLines)  # shown nowhere

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar = progress(10, "eval", "img", stream=Terminal())
    assert not isinstance(bar, LogLines) and not bar.disable  # tqdm's bar
    bar.close()
