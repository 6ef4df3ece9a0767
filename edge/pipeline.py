"""The checkout-box pipeline: frame -> faces -> crops -> ages -> tracks -> decisions -> events.

`BoxPipeline.process(frame)` is one step and returns the decisions it made;
`run()` drives it from a FrameSource until the source ends or `stop` is set
(SIGINT/SIGTERM): the frame in hand is finished, open tracks are decided, events
are flushed and the camera is released.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import cv2
import numpy as np

from .age_head import p_under
from .bands import band_of
from .capture import Frame, FrameSource
from .challenge25 import settings_mismatch
from .contracts import CHALLENGE_AGE
from .decision import Decision, DecisionPolicy, decide
from .detect import DetectorOptions, FaceBox, FaceDetector, crop_face
from .errors import UsageError
from .events import Event, EventStore
from .metadata import ModelMetadata
from .preprocess import as_rgb_uint8
from .runtime import AgeModel
from .stats import RuntimeMetrics
from .tracking import (BEHIND_SHARE, MIN_EYE_LIGHT, FrameQuality, IoUTracker, Track, appearance, eye_light,
                       frame_quality)

#: Frames with a face whose eye line the set-up view reads together (about a second at 15 frames/s): single frames of
#: the tests' clip turned a quarter read as little as 24 degrees off level, so one frame alone made the verdict
#: flicker (setup_view.MAX_SETUP_ROLL).
ROLL_FRAMES = 15

log = logging.getLogger("agegate.edge")


@dataclass
class BoxOptions:
    box_id: str = "box-1"
    store_id: str = ""  # written into every event (fleet reports group by store and till)
    till_id: str = ""
    threads: int = 2
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    window: int = 15  # a buyer's last N good frames are fused: median age, mixture of distributions for the risk
    decide_after: int = 10  # good frames before the decision is made
    max_missed: int = 10  # frames a face may be lost before its buyer counts as gone
    min_quality_face: int = 48  # px: smaller faces are tracked but not aged
    # Variance of the Laplacian below which a crop is too blurred to age. 10 since 2026-12-03 (20 before, set
    # unmeasured): on 1,702 val buyers (benchmarks/quality_gate_probe.py) 20 left 53 buyers `uncertain` as
    # blurred, asked for ID like minors; at 10 none, 25+ asked per buyer 23.7 -> 21.4 % for the same 1 of
    # 902 minors ok at its own operating point, decided buyers' MAE +0.03.
    min_sharpness: float = 10.0
    # Eyes darker than this share of the skin are behind sunglasses: the frame is not aged (tracking.eye_light;
    # 0: never checked).
    min_eye_light: float = MIN_EYE_LIGHT
    no_buyer_after_s: float = 2.0  # GET /decision answers no_buyer when no face was seen for this long
    # A face seen for fewer frames is a glimpse (a passer-by, a face at the edge of the picture, the
    # first frames of the next buyer before the tracks part), not a buyer: no decision, counted apart.
    min_track_frames: int = 3
    # Run the face detector on every k-th frame only; in between, the faces stay where they were last
    # found (a buyer at a till moves little in 1/10 s) and the appearance check still runs on each crop.
    detect_every: int = 1
    # False: age every face on every frame, decided or not (what the first release did; benchmarks
    # compare against it). True: a decided buyer is followed, not re-estimated.
    follow_decided: bool = True
    # True: each face's Look carries the age model's features when the file has them (one more model run
    # per face and frame; tracking.Separation). False: the image descriptor alone, as the first release.
    look_features: bool = True
    latency_budget_ms: float | None = None  # p50 inference per face above this: /healthz says "slow"

    def evidence_problem(self) -> str:
        """Why `decide_after` cannot work with these settings ('' when it can). A track holds at most `window`
        good frames, so a larger decide_after is never reached and every buyer would be decided only once they
        left; one smaller than the policy's min_frames decides every buyer uncertain."""
        if self.decide_after < self.policy.min_frames:
            return (f"decide_after ({self.decide_after}) must be at least min_frames ({self.policy.min_frames}): a "
                    f"buyer is decided after decide_after good frames, and one with fewer than min_frames is uncertain")
        if self.decide_after > self.window:
            return (f"decide_after ({self.decide_after}) must be at most {self.window}, the good frames a buyer's "
                    f"track fuses: with more, no buyer is decided until they leave")
        return ""

    def judge_face(self, rgb: np.ndarray, crop: np.ndarray, face: FaceBox) -> tuple[FrameQuality, float | None]:
        """Whether the box ages this face of the frame `rgb` (its crop `crop`), and the eyes' light against the
        skin (None: the check is off, or the face has no eye points). The box and its set-up view both judge here."""
        eyes = eye_light(rgb, face) if self.min_eye_light > 0 else None
        return frame_quality(crop, face, self.min_quality_face, self.min_sharpness, eyes=eyes,
                             min_eye_light=self.min_eye_light), eyes

    def decision_rules(self) -> dict[str, float]:
        """The settings that shape a buyer's decision beyond the model: recorded with an operating point when
        it is chosen (`agegate calibrate`), compared with the box's when it runs."""
        return {"min_sharpness": float(self.min_sharpness), "min_quality_face": float(self.min_quality_face),
                "decide_after": float(self.decide_after), "window": float(self.window),
                "min_frames": float(self.policy.min_frames), "max_spread": float(self.policy.max_spread),
                "refine_below": float(self.detector.refine_below), "refine_margin": float(self.detector.refine_margin),
                "min_score": float(self.detector.min_score),
                "small_face_score": float(self.detector.small_face_score),
                "min_eye_light": float(self.min_eye_light)}


def face_behind(j: int, faces: list[FaceBox], track: Track) -> bool:
    """Whether face `j` is someone further back than another face in view (`BEHIND_SHARE`): its side, steadied
    over its track's last frames, under that share of another face's. A face alone is never behind."""
    others = [f.side for k, f in enumerate(faces) if k != j]
    return bool(others) and track.steady_side(faces[j]) < BEHIND_SHARE * max(others)


def box_policy(meta: ModelMetadata, options: BoxOptions) -> DecisionPolicy:
    """The decision policy a box runs for a model: a distribution model decides by its calibrated risk at the
    operating point it carries (unless the box's settings fix max_risk); a regression model, or one not
    calibrated yet, by its fused age against id_threshold."""
    op = meta.operating_point
    if meta.head.is_distribution and op is not None and options.policy.max_risk is None:
        return replace(options.policy, max_risk=op.max_risk)
    return options.policy


def unused_threshold(meta: ModelMetadata, options: BoxOptions) -> str:
    """Why the box's id_threshold, set away from 25, does not decide ('' when it does, or is left at 25): a
    calibrated distribution model asks for ID by its risk at the operating point it carries, so raising the
    threshold to be stricter would change nothing, unsaid (`edge run` warns, `device doctor` says so)."""
    policy = box_policy(meta, options)
    if policy.max_risk is None or options.policy.id_threshold == CHALLENGE_AGE:
        return ""
    return (f"decision.id_threshold = {options.policy.id_threshold:g} is not used: this model asks for ID when "
            f"P(under 25) > {policy.max_risk:.3f}, its calibrated operating point; for a stricter rule, calibrate "
            f"it to a stricter target (`agegate calibrate --max-minors-ok`, `--max-minors-ok-buyer`)")


@dataclass
class BuyerDecision:
    """One buyer's decision, as the till, the log and the events table see it (never an image)."""

    track_id: int
    age: float | None
    band: str | None
    frames: int
    good_frames: int
    decision: Decision
    latency_ms: float
    box: FaceBox
    reason: str = ""  # why `uncertain` (a decision.Reason code first), '' otherwise
    ts: float = 0.0  # wall time of the newest frame the decision used
    risk: float | None = None  # P(under 25) from the fused distribution (distribution models only)
    steady: float | None = None  # that frame's steady time (Frame.steady): how long ago, whatever NTP does
    turn: float | None = None  # Track.turn: how far the buyer was turned from the camera (fleet: cameras misplaced)

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "age": self.age, "band": self.band, "frames": self.frames,
                "good_frames": self.good_frames, "decision": self.decision.value, "reason": self.reason,
                "latency_ms": self.latency_ms, "ts": round(self.ts, 3),
                "p_under_25": None if self.risk is None else round(self.risk, 4),
                "turn": None if self.turn is None else round(self.turn, 2)}

    def answer(self, now_steady: float) -> dict:
        """What /decision and /last say of it at `now_steady` (time.monotonic): with how long ago its newest frame
        was (`seconds_ago`), so a till can refuse a stale answer without its clock set like the box's. Measured on
        the steady clock: by the wall clock, NTP setting it back an hour made an hour-old decision read as 0 s."""
        ago = 0.0 if self.steady is None else max(0.0, now_steady - self.steady)
        return {**self.to_dict(), "seconds_ago": round(ago, 2)}


class BoxPipeline:
    def __init__(self, model: AgeModel, options: BoxOptions | None = None, events: EventStore | None = None,
                 metrics: RuntimeMetrics | None = None, *, diagnostic: bool = False):
        """`diagnostic`: a box run to record frames, not to serve a till (benchmarks' probes run with the blur
        gate off, or decisions held to each track's end with a decide_after beyond the window, on purpose): it
        does not warn that it decides otherwise than the model's operating point was chosen for."""
        self.model = model
        self.options = options or BoxOptions()
        problem = "" if diagnostic else self.options.evidence_problem()  # a probe may hold decisions on purpose
        if problem:
            raise UsageError(problem)
        self.policy = box_policy(model.meta, self.options)
        if not diagnostic and (unused := unused_threshold(model.meta, self.options)):
            log.warning(unused)
        if not diagnostic and model.meta.bundle is not None and model.meta.bundle.forced:
            # `device status` and `doctor` say so on the box; the till's decisions are where it matters
            b = model.meta.bundle
            log.warning("this model (%s %s) was bundled with --force after it failed QA%s: the till's decisions "
                        "rest on a model QA refused; install a QA-passed bundle", b.name, b.version,
                        f" (MAE {b.qa_mae:.2f})" if b.qa_mae is not None else "")
        mismatch = "" if diagnostic else settings_mismatch(model.meta.operating_point, self.options.decision_rules())
        if mismatch:
            # Only the photo profile searches tiles: a folder of photos, which no camera setting can make a till's.
            advice = ("photos are read with the photo detector profile, each its own buyer in one frame, under the "
                      f"{self.options.policy.min_frames} good frames a decision needs: each is uncertain "
                      "(too_few_frames) with its estimate shown, never waved through on one frame (`agegate eval` "
                      "decides per image at the operating point, `agegate replay` per buyer; --sequence reads the "
                      "folder as a video's frames)"
                      if self.options.detector.tiles else
                      "recalibrate with `agegate calibrate --config box.toml` or use the settings it was chosen "
                      "with")
            log.warning("the model's Challenge-25 operating point may not hold on this box: %s; %s", mismatch, advice)
        self.detector = FaceDetector(self.options.detector)
        self.tracker = IoUTracker(max_missed=self.options.max_missed, window=self.options.window)
        self.events = events
        self.metrics = metrics or RuntimeMetrics()
        self.last: BuyerDecision | None = None
        self.last_face_at: float | None = None  # steady clock (Frame.steady) of the last frame with a face
        self.lock = threading.RLock()  # process() and the HTTP thread (current(), /setup) see whole frames
        self._faces: list[FaceBox] = []  # the last detection (carried between frames with detect_every > 1)
        self._since_detect = 0
        self.bad_frames = 0
        self._track_ms: dict[int, list[float]] = {}
        self._labels: dict[int, str] = {}  # for annotation only; dropped with the track
        # The newest frame and its faces, for the set-up view (setup_view.py): memory only, replaced by
        # the next frame, never written anywhere.
        self.latest_rgb: np.ndarray | None = None
        self.latest_faces: list[FaceBox] = []
        # The eye line's lean (FaceBox.roll) of the largest face on the last frames with one: the set-up view
        # judges a camera on its side by their median, since BlazeFace reads a sideways face's eyes loosely.
        self.recent_rolls: deque[float] = deque(maxlen=ROLL_FRAMES)
        # Diagnostics (benchmarks/quality_gate_probe.py): called with each face frame the box judged, its
        # track, its FrameQuality and its AgeEstimate (None when the frame was not aged). Nothing is kept.
        self.frame_observer: Callable | None = None

    def process(self, frame: Frame) -> list[BuyerDecision]:
        with self.lock:
            return self._process(frame)

    def _process(self, frame: Frame) -> list[BuyerDecision]:
        """One frame: find the faces, look at each, match them to tracks, age each track's face, decide the
        tracks with enough evidence and the ones that left. Each stage is timed into `metrics`."""
        o, m = self.options, self.metrics
        t_start = time.perf_counter()
        m.observe("capture", max(0.0, (time.time() - frame.ts) * 1000))
        try:
            rgb = as_rgb_uint8(frame.rgb)
        except Exception:  # noqa: BLE001 - an odd frame is counted and skipped, never fatal
            self.bad_frames += 1
            return []
        # a new photo: the last one's buyers left (each photo is a buyer, however few its frames)
        made: list[BuyerDecision] = self._finish(glimpses=False) if frame.cut else []
        faces = self._find_faces(rgb, frame.cut)
        self.latest_rgb, self.latest_faces = rgb, faces
        if faces:
            self.last_face_at = frame.steady
            if (roll := max(faces, key=lambda f: f.area).roll) is not None:
                self.recent_rolls.append(roll)
        c0 = time.perf_counter()
        crops = [crop_face(rgb, face, self.model.spec.face_margin) for face in faces]
        crop_ms = (time.perf_counter() - c0) * 1000
        l0 = time.perf_counter()
        runs, looks = self._look(crops)
        look_ms = (time.perf_counter() - l0) * 1000
        f0 = time.perf_counter()
        tracks = self.tracker.match(faces, frame.steady, looks)
        frame_ms = (f0 - t_start) * 1000
        infer_ms = quality_ms = 0.0
        for j, (track, face, crop, run) in enumerate(zip(tracks, faces, crops, runs)):
            behind = face_behind(j, faces, track)
            if (track.decided and o.follow_decided) or track.changed or behind:
                # A decided buyer is followed without re-estimating (the appearance check above still
                # runs, so a new face is noticed); a frame that may show someone else is held back; so is
                # someone waiting behind the buyer at the till, aged once they step up.
                track.add(face, frame.ts, None, steady=frame.steady, behind=behind)
                continue
            q_ms, i_ms = self._age(track, face, crop, run, rgb, frame)
            quality_ms += q_ms
            infer_ms += i_ms
            self._track_ms.setdefault(track.track_id, []).append(frame_ms)
            if not track.decided and track.good_frames >= o.decide_after:
                made.append(self._decide(track))
        if faces:
            m.observe("crop", crop_ms + quality_ms)
            m.observe("look", look_ms)
            m.observe("infer", infer_ms)
        for track in self.tracker.expire():
            if not track.decided:
                self._decide_or_drop(track, made)
            self._forget(track)
        m.observe("fuse", max(0.0, (time.perf_counter() - f0) * 1000 - infer_ms - quality_ms))
        m.observe("frame", (time.perf_counter() - t_start) * 1000)
        m.frame_done(len(faces))
        return made

    def _find_faces(self, rgb: np.ndarray, new_photo: bool) -> list[FaceBox]:
        """The frame's faces: detected, or with detect_every > 1 carried from the last detection (a new photo
        is always looked at)."""
        if new_photo:
            self._since_detect = 0
        t0 = time.perf_counter()
        if self.options.detect_every > 1 and self._since_detect % self.options.detect_every:
            faces = self._faces
        else:
            faces = self._faces = self.detector.detect(rgb)
            self.metrics.observe("detect", (time.perf_counter() - t0) * 1000)
        self._since_detect += 1
        return faces

    def _look(self, crops: list[np.ndarray]) -> tuple[list, list]:
        """Every face's model run (when the look uses the age model's features) and its look.

        One run per face, decided buyers included: a look-alike stepping into a decided buyer's place is the
        merge this catches; a face that is then aged reuses the run."""
        use_features = self.options.look_features and self.model.has_features
        runs = [self.model.run_face(c) if use_features else None for c in crops]
        return runs, [appearance(c, r.features, r.age) if r else appearance(c) for c, r in zip(crops, runs)]

    def _age(self, track: Track, face: FaceBox, crop: np.ndarray, run, rgb: np.ndarray,
             frame: Frame) -> tuple[float, float]:
        """Judge the face's frame and age it if good enough; add it to its track. (judging ms, ageing ms)."""
        c1 = time.perf_counter()
        q, _ = self.options.judge_face(rgb, crop, face)
        c2 = time.perf_counter()
        est = None if not q.good else self.model.estimate_run(run) if run else self.model.estimate_face(crop)
        infer_ms = (time.perf_counter() - c2) * 1000
        if self.frame_observer is not None:
            self.frame_observer(track, q, est)
        track.add(face, frame.ts, est.age if est else None, q.reason, est.probs if est else None, q.weight,
                  frame.steady)
        return (c2 - c1) * 1000, infer_ms

    def _judge(self, track: Track) -> BuyerDecision:
        """The decision a track's evidence supports now (pure: nothing is recorded)."""
        fused = track.fused_age()
        dist = track.fused_distribution()
        risk = None if dist is None else float(p_under(dist, self.model.meta.head, CHALLENGE_AGE)[0])
        kind, reason = decide(fused, track.good_frames, track.spread(), self.policy, track.bad_frames, risk)
        ms = self._track_ms.get(track.track_id, [0.0])
        wall, steady = track.newest_aged()
        return BuyerDecision(track.track_id, None if fused is None else round(fused, 2),
                             None if fused is None else band_of(fused), track.frames, track.good_frames, kind,
                             round(float(np.mean(ms)), 3), track.box, reason, wall, risk, steady, track.turn())

    def _decide(self, track: Track) -> BuyerDecision:
        d = self._judge(track)
        track.decided, track.decision = True, d
        self._labels[track.track_id] = f"#{track.track_id} {d.age if d.age is not None else '?'} {d.decision}"
        self.metrics.decision(d.decision)
        self.last = d
        if self.events is not None:
            o = self.options
            self.events.add(Event.from_decision(d, time.time(), o.box_id, self.model.label, o.store_id, o.till_id))
        return d

    def current(self) -> dict:
        """GET /decision: the buyer in front of the camera now (the largest live face): their decision
        if made, else what the evidence so far supports, marked provisional; no_buyer when no face
        has been seen for `no_buyer_after_s` (on the steady clock, as `seconds_ago`)."""
        now = time.monotonic()
        with self.lock:
            since = None if self.last_face_at is None else max(0.0, now - self.last_face_at)
            track = self.answering_track()
            if track is None or since is None or since > self.options.no_buyer_after_s:
                return {"decision": "no_buyer", "seconds_since_face": None if since is None else round(since, 2),
                        "ts": time.time()}
            d = track.decision or self._judge(track)
            return {**d.answer(now), "provisional": track.decision is None, "frames_used": d.good_frames}

    def answering_track(self) -> Track | None:
        """The track GET /decision answers for: the largest face in the newest frame (the buyer at the till;
        someone waiting behind them is further from the camera), by its side over the last few frames (one
        detection in too large a box does not make them the buyer); None when the frame had none."""
        live = [t for t in self.tracker.tracks.values() if t.missed == 0]
        return max(live, key=lambda t: float(np.median(t.sides))) if live else None

    def last_decision(self) -> dict:
        """GET /last: the newest decision made (`BuyerDecision.answer`)."""
        d = self.last
        if d is None:
            return {"decision": None}
        return d.answer(time.monotonic())

    def _forget(self, track: Track) -> None:
        self._track_ms.pop(track.track_id, None)
        self._labels.pop(track.track_id, None)

    def finish(self, glimpses: bool = True) -> list[BuyerDecision]:
        """Decide every open track (end of stream or shutdown); with glimpses=False even the briefest
        (the last photo of a folder is a buyer with one frame)."""
        with self.lock:
            return self._finish(glimpses)

    def _decide_or_drop(self, track: Track, made: list[BuyerDecision], glimpses: bool = True) -> None:
        if track.never_at_front:  # waited behind the buyer at the till: not a buyer of this track's own
            self.metrics.bystander()
        elif glimpses and track.ended and track.good_frames < self.policy.min_frames:
            # Another face took its place before it had the frames to decide on: the same person stepping up
            # from the queue who changed how they look (they go on in the new track), or a passer-by.
            self.metrics.glimpse()
        elif not glimpses or track.frames >= self.options.min_track_frames:
            made.append(self._decide(track))
        else:
            self.metrics.glimpse()

    def _finish(self, glimpses: bool = True) -> list[BuyerDecision]:
        made: list[BuyerDecision] = []
        for t in self.tracker.drain():
            if not t.decided:
                self._decide_or_drop(t, made, glimpses)
        self._track_ms.clear()
        self._labels.clear()
        return made

    def annotate(self, rgb: np.ndarray) -> np.ndarray:
        """A copy of the frame with the box and label of each track seen in it (set-up and demo only). A track held
        for a buyer not seen this frame (`missed`: the box waits max_missed frames before deciding they left) is not
        drawn: its box stood on the empty till for those frames, like a face found where there is none."""
        out = cv2.cvtColor(as_rgb_uint8(rgb), cv2.COLOR_RGB2BGR)
        for t in self.tracker.tracks.values():
            if t.missed:
                continue
            b = t.box
            label = self._labels.get(t.track_id) or f"#{t.track_id} {t.fused_age() or 0:.0f}?"
            ok = t.decision is not None and t.decision.decision is Decision.OK
            colour = (0, 160, 0) if ok else (0, 0, 220)
            cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), colour, 2)
            cv2.putText(out, label, (int(b.x0), max(12, int(b.y0) - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                        cv2.LINE_AA)
        return out

    def run(self, source: FrameSource, stop: threading.Event | None = None,
            on_decision: Callable[[BuyerDecision], None] | None = None,
            on_frame: Callable[[Frame, "BoxPipeline"], None] | None = None, max_frames: int | None = None) -> int:
        """Process frames until the source ends, `stop` is set, or max_frames. Returns frames processed."""
        stop = stop or threading.Event()
        n = 0
        try:
            while not stop.is_set():
                frame = source.read(timeout=0.5)
                m = self.metrics
                m.dropped, m.reconnects = source.dropped, source.reconnects
                m.source_connected, m.source_error = source.connected, source.error
                if frame is None:
                    if source.ended:
                        break
                    continue
                for d in self.process(frame):
                    if on_decision:
                        on_decision(d)
                if on_frame:
                    on_frame(frame, self)
                n += 1
                if max_frames and n >= max_frames:
                    break
        finally:
            for d in self.finish(glimpses=not source.photos):
                if on_decision:
                    on_decision(d)
            if self.events is not None:
                self.events.flush()
            source.close()
        return n
