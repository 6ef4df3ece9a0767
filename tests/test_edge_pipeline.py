"""The box pipeline end to end on videos written from real chips, with the shipped int8 model."""
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge.capture import Frame, FrameSource, SourceOptions
from agegate.edge.cli import cli
from agegate.edge.events import EventStore, read_events
from agegate.edge.pipeline import BoxOptions, BoxPipeline
from agegate.edge.runtime import AgeModel

from .conftest import UTK, face_frame, pick, queue_frame, write_video

ADULTS = pick("test", 2, seed=21, lo=45, hi=60)
CHILDREN = pick("test", 2, seed=22, lo=3, hi=8)


@pytest.fixture(scope="module")
def buyers_video(tmp_path_factory) -> Path:
    segs = []
    for name in [ADULTS[0], CHILDREN[0], ADULTS[1], CHILDREN[1]]:
        segs += [([name], 24), ([], 14)]
    return write_video(tmp_path_factory.mktemp("video") / "buyers.mp4", segs)


def test_decisions_for_adults_and_children(shipped_model, buyers_video, tmp_path):
    store = EventStore(tmp_path / "events.sqlite", retention_days=0)
    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions(), store)
    decisions = []
    pipe.run(FrameSource(str(buyers_video)), on_decision=decisions.append)
    store.close()
    assert len(decisions) == 4, decisions
    kinds = [d.decision for d in sorted(decisions, key=lambda d: d.track_id)]
    assert kinds[0] == "ok" and kinds[2] == "ok", decisions  # 45-60 year olds
    assert kinds[1] != "ok" and kinds[3] != "ok", decisions  # 3-8 year olds need ID
    events = read_events(tmp_path / "events.sqlite")
    assert [e.decision for e in events] == [d.decision for d in decisions]
    assert all(e.frames >= 10 for e in events)
    # nothing but the database was written: no image, crop or video
    written = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert all(n.startswith("events.sqlite") for n in written), written


def test_many_faces_are_tracked_separately(shipped_model, tmp_path):
    video = write_video(tmp_path / "two.mp4", [([ADULTS[0], CHILDREN[0]], 20)])
    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions())
    decisions = []
    pipe.run(FrameSource(str(video)), on_decision=decisions.append)
    assert len(decisions) == 2
    by_x = sorted(decisions, key=lambda d: d.box.x0)
    assert by_x[0].decision == "ok" and by_x[1].decision != "ok"


def test_odd_frames_do_not_stop_the_box(shipped_model):
    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions())
    now = time.time()
    for i, img in enumerate([np.zeros((1, 1, 3), np.uint8), np.zeros((480, 640), np.uint8),
                             np.zeros((480, 640, 4), np.uint8), np.zeros((7, 3000, 3), np.uint8),
                             cv2.cvtColor(face_frame([ADULTS[0]]), cv2.COLOR_BGR2RGB)]):
        pipe.process(Frame(i, now, img))
    assert pipe.metrics.frames + pipe.bad_frames == 5
    assert pipe.bad_frames == 1  # the 1x1 frame; grey, RGBA and very wide frames are converted


def test_bad_model_files_fail_before_the_camera(tmp_path):
    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40)
    trunc.with_suffix(".json").write_text("{}")
    notflite = tmp_path / "model.tflite"
    notflite.write_text("hello")
    for model, msg in [(tmp_path / "missing.tflite", "not found"), (notflite, "not a TFLite"),
                       (trunc, "metadata")]:
        r = CliRunner().invoke(cli, ["edge", "run", "--source", "0", "--model", str(model), "--no-api"])
        assert r.exit_code == 1 and msg in r.output, r.output


def test_a_source_that_can_give_no_frame_fails_before_anything_is_created(tmp_path, shipped_model):
    """A folder without images or a file OpenCV cannot read is refused with the reason, and no events file is
    left behind (the store is opened only for a source that can give frames)."""
    empty, broken = tmp_path / "empty", tmp_path / "clip.mp4"
    empty.mkdir()
    broken.write_bytes(b"not a video")
    for source, msg in [(empty, "folder holds no images"), (broken, "cannot read this video file")]:
        events = tmp_path / "events.sqlite"
        r = CliRunner().invoke(cli, ["edge", "run", "--source", str(source), "--model", str(shipped_model),
                                     "--events", str(events), "--no-api"])
        assert r.exit_code == 1 and msg in r.output, r.output
        assert not events.exists()


def test_eval_of_a_file_that_is_no_model_says_so(tmp_path, small_utk):
    """A file given by mistake as --model is named as no model, not as a model whose sidecar is missing."""
    readme = tmp_path / "README.md"
    readme.write_text("# notes on the last run, long enough to pass for a file")
    r = CliRunner().invoke(cli, ["eval", "--model", str(readme), "--data", str(small_utk)])
    assert r.exit_code == 1 and "README.md: not an agegate model" in r.output and "sidecar" not in r.output


class _MJPEG(BaseHTTPRequestHandler):
    frames: list[bytes] = []
    count = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in range(type(self).count):
                data = type(self).frames[i % len(type(self).frames)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_stream_that_fails_then_recovers():
    """An MJPEG stream that is down at first, comes up, drops, and comes back: frames keep arriving."""
    _MJPEG.frames = [cv2.imencode(".jpg", face_frame([ADULTS[0]]))[1].tobytes()]
    _MJPEG.count = 30
    port = _free_port()
    src = FrameSource(f"http://127.0.0.1:{port}/stream.mjpg", SourceOptions(backoff_start=0.2, backoff_max=0.5))
    try:
        assert src.read(timeout=0.8) is None  # nothing listens yet
        server = ThreadingHTTPServer(("127.0.0.1", port), _MJPEG)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        got = [src.read(timeout=10) for _ in range(5)]
        assert all(f is not None and f.rgb.shape == (480, 640, 3) for f in got)
        deadline = time.time() + 20  # each response ends after 30 frames: the source reconnects
        while src.reconnects < 1 and time.time() < deadline:
            src.read(timeout=1)
        assert src.reconnects >= 1
        assert src.read(timeout=10) is not None
        server.shutdown()
    finally:
        src.close()


def test_http_endpoints_and_token(shipped_model, buyers_video):
    from agegate.edge.api import make_server, serve_in_background

    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions())
    pipe.run(FrameSource(str(buyers_video)), max_frames=60)
    server = make_server(pipe, "127.0.0.1", 0, token="s3cret")
    serve_in_background(server)
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def get(path, token="s3cret"):
        req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()

    try:
        assert json.loads(get("/healthz")[1])["status"] == "ok"
        last = json.loads(get("/last")[1])
        assert last["decision"] in ("ok", "id_check", "uncertain") and "age" in last
        metrics = get("/metrics")[1]
        assert "agegate_fps" in metrics and 'agegate_stage_latency_ms{stage="infer",quantile="0.95"}' in metrics
        assert f'agegate_model_info{{model="{pipe.model.label}"}} 1' in metrics  # which model the box runs
        with pytest.raises(urllib.error.HTTPError) as e:
            get("/healthz", token="wrong")
        assert e.value.code == 401
    finally:
        server.shutdown()


def test_sigterm_flushes_events_and_exits_0(shipped_model, tmp_path):
    long_video = write_video(tmp_path / "long.mp4", [([ADULTS[0]], 20), ([], 12), ([ADULTS[1]], 600)])
    db = tmp_path / "ev.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "agegate.edge", "edge", "run", "--source", str(long_video),
                             "--events", str(db), "--no-api", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline(), proc.stdout.readline()]  # both buyers decided; the clip goes on
    assert all(json.loads(l)["decision"] in ("ok", "id_check", "uncertain") for l in lines)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    frames = int(err.strip().splitlines()[-1].split()[0])
    assert frames < 632, "the clip ended before SIGTERM arrived"
    rows = sqlite3.connect(db).execute("SELECT track_id, decision FROM events ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [json.loads(l)["decision"] for l in lines + out.strip().splitlines()]


def test_box_path_never_imports_tensorflow(shipped_model, buyers_video):
    code = f"""
import sys
from agegate.edge.runtime import AgeModel
from agegate.edge.pipeline import BoxPipeline, BoxOptions
from agegate.edge.capture import FrameSource
from agegate.edge.cli import cli
p = BoxPipeline(AgeModel({str(shipped_model)!r}), BoxOptions())
n = p.run(FrameSource({str(buyers_video)!r}))
assert n > 50, n
bad = [m for m in sys.modules if m == 'tensorflow' or m.startswith(('tensorflow.', 'tf_keras', 'keras'))]
assert not bad, bad
print('ok', n)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


def test_edge_stats_table_json_and_chart(tmp_path, shipped_model, buyers_video):
    db = tmp_path / "e.sqlite"
    r = CliRunner().invoke(cli, ["edge", "run", "--source", str(buyers_video), "--model", str(shipped_model),
                                 "--events", str(db), "--no-api"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["edge", "stats", "--events", str(db), "--json"])
    s = json.loads(r.output)
    assert s["buyers"] == 4 and s["id_checks"] >= 2
    r = CliRunner().invoke(cli, ["edge", "stats", "--events", str(db), "--by", "hour", "--png", str(tmp_path / "c.png")])
    assert r.exit_code == 0 and (tmp_path / "c.png").stat().st_size > 1000


def test_demo_runs_on_embedded_faces(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert r.output.count("buyer #") == 2 and "hopper_78.jpg" in r.output
    assert "note:" not in r.output  # one decision per portrait: neither is split nor merged
    for f in ("annotated.mp4", "events.sqlite", "buyers_by_band.png"):
        assert (tmp_path / "d" / f).stat().st_size > 0


def test_demo_with_your_own_portraits_skips_a_file_that_is_no_image(tmp_path):
    """`--faces DIR`: a portrait of yours is a third buyer; a file that does not decode is named and left out
    (it once ended the demo in an AttributeError)."""
    import shutil

    from agegate.edge.default_model import assets_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(sorted((assets_dir() / "demo").glob("*.jpg"))[1], mine / "ada_78.jpg")
    (mine / "broken_20.jpg").write_text("not an image")
    r = CliRunner().invoke(cli, ["demo", "--faces", str(mine), "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "skipped" in r.output and "broken_20.jpg: not a readable image" in r.output
    assert r.output.count("buyer #") == 3 and "ada_78.jpg" in r.output
    # --json: the same run as one object, each portrait with its decision, and nothing else on stdout
    r = CliRunner().invoke(cli, ["demo", "--faces", str(mine), "--out", str(tmp_path / "j"), "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(r.stdout)
    assert d["ok"] and d["portraits"] == d["decisions"] == 3 and d["skipped"] == [str(mine / "broken_20.jpg")]
    assert [b["portrait"] for b in d["buyers"]][-1] == "ada_78.jpg" and d["buyers"][-1]["age_in_photo"] == 78
    assert {b["decision"] for b in d["buyers"]} <= {"ok", "id_check", "uncertain"}
    assert all(Path(f).stat().st_size > 0 for f in d["files"])


def test_frame_observer_sees_every_judged_face_frame_and_what_it_gave(shipped_model):
    """The diagnostics hook gets each face frame the box judged (quality, estimate or None) and does not
    change the decision; a frame under the blur limit comes with no estimate."""
    rgb = cv2.cvtColor(face_frame([ADULTS[0]]), cv2.COLOR_BGR2RGB)
    seen, made = [], []
    for limit in (20.0, 1e9):
        pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions(min_sharpness=limit))
        if limit == 20.0:
            pipe.frame_observer = lambda track, q, est: seen.append((track.track_id, q, est))
        now = time.time()
        for i in range(12):
            made += pipe.process(Frame(i, now + i / 15, rgb))
    assert len(seen) == 10 and len({t for t, _, _ in seen}) == 1  # aged until decided at the 10th
    assert all(q.good and est is not None and est.probs is not None for _, q, est in seen)
    assert [d.decision for d in made] == ["ok"]  # the unobserved, all-blurred box has not decided yet


def test_the_annotated_frame_draws_only_the_faces_in_it(shipped_model):
    """The demo's and set-up view's frames kept a buyer's box on the empty till for the frames the box waits before
    deciding they left (a red box on nothing, labelled id_check); now only the faces seen in that frame."""
    face = cv2.cvtColor(face_frame([ADULTS[0]]), cv2.COLOR_BGR2RGB)
    empty = np.full_like(face, 90)
    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions())
    now = time.time()
    for i in range(12):
        pipe.process(Frame(i, now + i / 15, face))
    drawn = pipe.annotate(face)
    assert np.abs(drawn.astype(int) - cv2.cvtColor(face, cv2.COLOR_RGB2BGR)).max() > 100  # the buyer's box
    pipe.process(Frame(12, now + 12 / 15, empty))
    assert pipe.tracker.tracks  # still held: the buyer may be back next frame
    assert np.array_equal(pipe.annotate(empty), cv2.cvtColor(empty, cv2.COLOR_RGB2BGR))


def test_how_far_a_buyer_was_turned_is_decided_with_them_and_kept_in_their_event(shipped_model, tmp_path):
    """Each decision and its event row carry how far the buyer was turned from the camera (the median |turn| of
    their frames; no image), from which the fleet report finds cameras beside where buyers look: All-Age-Faces
    photos of a girl turned about a third of the way to profile and of one facing the camera, at the till."""
    from agegate.edge.setup_view import MAX_SETUP_TURN

    store = EventStore(tmp_path / "events.sqlite", retention_days=0)
    made = []
    for name in ("00018A02.jpg", "00008A02.jpg"):
        photo = cv2.cvtColor(cv2.imread(str(UTK.parent / "aaf" / "images" / name)), cv2.COLOR_BGR2RGB)
        k = 300 / max(photo.shape[:2])
        photo = cv2.resize(photo, (round(photo.shape[1] * k), round(photo.shape[0] * k)))
        rgb = np.full((480, 640, 3), 96, np.uint8)
        rgb[90:90 + photo.shape[0], 170:170 + photo.shape[1]] = photo
        pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions(), store)
        now = time.time()
        for i in range(12):
            made += pipe.process(Frame(i, now + i / 15, rgb))
    store.close()
    assert len(made) == 2, made
    turned, facing = made
    assert turned.turn > MAX_SETUP_TURN and facing.turn < 0.1, made  # at the till: 0.24 and 0.05
    assert turned.to_dict()["turn"] == round(turned.turn, 2)
    assert [e.turn for e in read_events(tmp_path / "events.sqlite")] == [round(d.turn, 2) for d in made]
    stats = CliRunner().invoke(cli, ["edge", "stats", "--events", str(tmp_path / "events.sqlite")])
    assert f"seen turned past {MAX_SETUP_TURN}: 50% of 2 buyers" in stats.output, stats.output


def test_a_connection_that_sends_nothing_is_closed(shipped_model, monkeypatch):
    """Each connection that never sent its request held one of the box's threads for good (no socket timeout);
    the server now closes it after REQUEST_TIMEOUT_S, and serves others meanwhile."""
    import socket

    import agegate.edge.api as api

    monkeypatch.setattr(api, "REQUEST_TIMEOUT_S", 0.5)
    server = api.make_server(BoxPipeline(AgeModel(shipped_model), BoxOptions()), "127.0.0.1", 0)
    api.serve_in_background(server)
    try:
        idle = socket.create_connection(server.server_address, timeout=5)
        idle.sendall(b"GET /heal")  # half a request, then silence
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/last", timeout=5) as r:
            assert r.status == 200
        assert idle.recv(1024) == b""  # closed by the server (a timeout here: the socket was kept open)
        idle.close()
    finally:
        server.shutdown()


def test_someone_waiting_behind_the_buyer_is_tracked_not_aged(shipped_model):
    """A face under BEHIND_SHARE of the largest in view is the next in the queue: it is not aged (its decision
    comes from its own frames at the till), and if it leaves without reaching the till it is no buyer."""
    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions())
    made, t = [], 1.7e9
    for i in range(24):  # the adult at the till, a child waiting beside and behind
        t += 1 / 15
        rgb = cv2.cvtColor(queue_frame(ADULTS[0], CHILDREN[0], dx=int(4 * np.sin(i / 3))), cv2.COLOR_BGR2RGB)
        made += pipe.process(Frame(i, t, rgb, steady=t))
        if i == 20:
            assert len(pipe.tracker.tracks) == 2
            waiting = min(pipe.tracker.tracks.values(), key=lambda tr: tr.box.area)
            assert waiting.good_frames == 0 and waiting.behind == waiting.frames > 15 and waiting.never_at_front
            assert pipe.answering_track() is not waiting  # GET /decision answers for the buyer at the till
    assert [d.good_frames >= 10 for d in made] == [True]  # the adult, from their own frames
    for i in range(24, 40):  # the child walks off: no decision, counted as a bystander
        t += 1 / 15
        made += pipe.process(Frame(i, t, cv2.cvtColor(queue_frame(ADULTS[0], None), cv2.COLOR_BGR2RGB),
                                   steady=t))
    made += pipe.finish()
    assert len(made) == 1 and pipe.metrics.bystanders == 1 and pipe.metrics.glimpses == 0
    assert "agegate_bystanders_total 1" in pipe.metrics.prometheus()


def test_a_folder_photo_is_one_buyer_and_smaller_faces_in_it_are_further_back(tmp_path, shipped_model):
    """`--source photos/` is one buyer per photo: a face under BEHIND_SHARE of the largest in the same photo is
    someone further back, not decided and said at the end; two faces of about one size are each decided."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "1-queue.png"), queue_frame(ADULTS[0], CHILDREN[0]))  # a child small behind
    cv2.imwrite(str(folder / "2-pair.png"), face_frame(ADULTS))  # two adults side by side, one size
    r = CliRunner().invoke(cli, ["edge", "run", "--source", str(folder), "--model", str(shipped_model), "--no-api",
                                 "--json", "--events", str(tmp_path / "events.sqlite")])
    assert r.exit_code == 0, r.output
    decisions = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(decisions) == 3 and all(d["frames"] == 1 for d in decisions)
    assert "3 buyers" in r.stderr and "1 face seen only behind a larger one" in r.stderr


def test_the_next_buyer_stepping_up_from_the_queue_keeps_one_track_and_one_decision(shipped_model):
    """Through the replay's queue: each buyer waits behind the one before and steps up; every buyer gets one
    decision, made from frames at the till, not while waiting."""
    from agegate.convert.evaluate import select_records
    from agegate.convert.replay import ReplayOptions, load_buyers, run_buyers

    records = [r for r in select_records(str(UTK), "auto", None, "test") if Path(r.path).name in
               ADULTS + CHILDREN]
    buyers, _ = load_buyers(records)
    run = run_buyers(BoxPipeline(AgeModel(shipped_model), BoxOptions()), buyers,
                     ReplayOptions(frames=20, gap=(0, 5), queue=1.0))
    assert len(run.outcomes) == 4 and sum(o.waited is not None for o in run.outcomes) == 3
    assert all(len(o.decisions) == 1 for o in run.outcomes)  # none merged, none split
    assert all(o.answered >= o.shown[0] for o in run.outcomes)  # decided at the till, not while waiting
    assert all(o.till_answer_for == o.buyer.index for o in run.outcomes)


def test_a_track_broken_off_before_it_could_be_decided_is_no_buyer(shipped_model):
    """A track that another face took the place of (`Track.ended`) before it had `min_frames` good frames is
    a fragment (someone stepping up who changed how they look goes on in the new track): no decision, counted
    as a glimpse. A track that simply left with as few is still decided, `uncertain`."""
    from collections import deque

    from agegate.edge.detect import FaceBox
    from agegate.edge.tracking import Track

    pipe = BoxPipeline(AgeModel(shipped_model), BoxOptions())
    for ended, decided in [(True, 0), (False, 1)]:
        t = Track(1, FaceBox(100, 100, 250, 250), 0.0, 0.0, ages=deque())
        for i in range(6):
            t.add(FaceBox(100, 100, 250, 250), i / 15, 30.0 if i < 2 else None, "" if i < 2 else "blurred",
                  steady=i / 15)
        t.ended, made = ended, []
        pipe._decide_or_drop(t, made)
        assert len(made) == decided and (made == [] or made[0].decision == "uncertain")
    assert pipe.metrics.glimpses == 1


def test_a_camera_on_its_side_decides_as_an_upright_one_once_told_to_turn(tmp_path):
    """The shipped model on a buyer whose camera lies on its side: `edge run --rotate 270` turns every frame
    back and decides the buyer as the upright camera does (the same decision on as many frames, every one aged;
    the age within 2 years, the frame being 480x640 where the upright one is 640x480: 1.2 here), and the start
    line says the frames are turned. Left on its side, the same buyer took 15 frames to find 10 to age, and read
    3.3 years older."""
    from .conftest import portrait_video

    def decisions(video, *extra):
        r = CliRunner().invoke(cli, ["edge", "run", "--source", str(video), "--no-api", "--json",
                                     "--events", str(tmp_path / f"{video.stem}.sqlite"), *extra])
        assert r.exit_code == 0, r.output
        return [json.loads(line) for line in r.stdout.splitlines()], r.stderr

    upright, _ = decisions(portrait_video(tmp_path / "upright.mp4", frames=40))
    turned, said = decisions(portrait_video(tmp_path / "side.mp4", frames=40, turn=90), "--rotate", "270")
    assert "turned 270 degrees" in said
    assert [d["decision"] for d in turned] == [d["decision"] for d in upright] == ["ok"]
    assert turned[0]["frames"] == turned[0]["good_frames"] == upright[0]["frames"], (turned, upright)
    assert abs(turned[0]["age"] - upright[0]["age"]) < 2.0, (turned, upright)
