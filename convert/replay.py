"""`agegate replay`: labelled photos as buyers at a till, through the real box pipeline.

What a store gets is one decision per buyer, so the box is judged per buyer. Each photo
becomes a buyer: the face (found with the photo detector profile) is placed in a 640x480
frame at a face size a till camera sees, shown for N frames with till-camera changes
(position jitter, zoom, sensor noise, brightness, JPEG, occasional motion blur; seeded),
and buyers follow each other in a random order with gaps drawn from a range, 0 included
(the next buyer steps in as the last one leaves), or, with a queue, the next one waits in view
behind the buyer at the till and steps up as they leave. The real `BoxPipeline` runs over the
frames; each decision is matched to the buyer shown in most of its track's frames.

Per buyer: an own decision (or several: split), or none (merged into a neighbour's track:
the buyer then gets that track's decision, so a minor merged into an adult's `ok` counts
as passed). Reported: decided share, MAE of fused ages, minors decided ok, 25+ asked for
ID, merged and split buyers, decisions on a till with nobody there (a false face), uncertain reasons,
how long after a buyer appears the decision comes (in camera time: the replay's frames are 1/15 s apart
whatever the CPU), frames per second and the cost of empty frames.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from agegate.edge.bands import band_of
from agegate.edge.capture import Frame
from agegate.edge.challenge25 import BLOCKED_RISK, RISK_DECIMALS, tradeoff_curve
from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE
from agegate.edge.decision import Decision, reason_code
from agegate.edge.detect import DetectorOptions, FaceBox, FaceDetector, box_crop
from agegate.edge.errors import AgegateError, DatasetError
from agegate.edge.preprocess import decode_image

from .covers import Cover, apply_cover
from .metrics import band_shares

FRAME_W, FRAME_H = 640, 480
FPS = 15.0
#: Face box side in a 640x480 till frame: about 0.5-1 m from a wide-angle camera (the shipped demo's
#: faces are ~150-200 px); smaller faces test the far end.
FACE_PX = (110, 190)
CONTEXT = 1.6  # the placed patch spans this times the face box: hair, neck, a little background


@dataclass
class ReplayOptions:
    frames: int = 20  # frames per buyer
    gap: tuple[int, int] = (0, 15)  # empty frames between buyers, drawn uniformly (inclusive)
    seed: int = 0
    face_px: tuple[float, float] = FACE_PX  # each visit's face box side in the 640x480 frame, drawn uniformly
    cover: Cover = Cover.NONE  # what every buyer wears over the face (covers.py)
    queue: float = 0.0  # the share of buyers who wait in view behind the one before them, then step up
    grey: bool = False  # every frame as a monochrome (night-mode) camera gives it


@dataclass
class Buyer:
    index: int
    path: str
    age: float
    patch: np.ndarray  # RGB head patch, square; the face box is its centre 1/CONTEXT


@dataclass
class BuyerOutcome:
    buyer: Buyer
    decisions: list = field(default_factory=list)  # own BuyerDecisions (0: merged, >1: split)
    inherited: object | None = None  # a merged buyer: the decision of the track that covered them
    # Camera time (s) of the buyer's first and last frame, and when the box returned their own first
    # decision (None: no own decision): how long the till waits for an answer.
    shown: tuple[float, float] | None = None
    answered: float | None = None
    waited: float | None = None  # camera time they were first seen waiting behind the buyer before (a queue)
    # What the till was told at the buyer's last frame at the till (`BoxPipeline.answering_track`, as GET
    # /decision answers): whose track it was (None: no face answered) and whether its decision was made yet.
    till_answer_for: int | None = None
    till_answer_provisional: bool = False

    @property
    def final(self):
        """The decision this buyer was served with: their first own one, else the inherited one."""
        return self.decisions[0] if self.decisions else self.inherited


def head_patch(rgb: np.ndarray, detector: FaceDetector, label: FaceBox | None = None) -> np.ndarray | None:
    """The photo's largest face (the labelled one, with a `label`) with CONTEXT x its box around it,
    upright as photographed, 256 px."""
    found = box_crop(rgb, detector, margin=0.0, context=CONTEXT, out_size=256, align=False, label=label)
    return None if found is None else found[0]


def replay_draws(model, records: list, box, draws: int, options: ReplayOptions | None = None,
                 show: bool = False) -> list[dict]:
    """Place `records` (labelled photos) as buyers once and replay them `draws` times through a BoxPipeline of
    `model` (an AgeModel, with the metadata it decides by) and `box` (BoxOptions), with seeds options.seed, +1,
    ...: each draw shows them in another order, with other gaps, poses and camera noise. One summary per draw,
    each with `unplaced` (photos without a face: path and why), listing the buyers in the same order, so their
    `buyer_risks` stack into (draws, buyers) (challenge25.by_draw). calibrate, qa and `agegate replay` replay
    this way."""
    from agegate.edge.pipeline import BoxPipeline
    from agegate.edge.progress import progress

    options = options or ReplayOptions()
    with progress(len(records), "place buyers", "buyer", show) as bar:
        placed, unplaced = load_buyers(records, bar.update, options.cover)
    if not placed:
        raise DatasetError(f"no buyer could be placed: no face found in any of {len(records)} photos")
    summaries = []
    for d in range(draws):
        desc = "replay" if draws == 1 else f"replay, draw {d + 1} of {draws}"
        with progress(len(placed), desc, "buyer", show) as bar:
            summary = replay(BoxPipeline(model, box), placed, replace(options, seed=options.seed + d), bar.update)
        summary["unplaced"] = [{"path": path, "reason": why} for path, why in unplaced]
        summaries.append(summary)
    return summaries


def load_buyers(records, progress=None, cover: Cover = Cover.NONE) -> tuple[list[Buyer], list[tuple[str, str]]]:
    """Each record's head patch as a buyer (`cover` drawn over the face, found again on the patch); the records
    without one as (path, why)."""
    detector = FaceDetector(DetectorOptions.for_photos())
    buyers, unplaced = [], []
    for rec in records:
        try:
            patch = head_patch(decode_image(rec.path), detector, rec.face_label)
        except AgegateError as e:
            unplaced.append((str(rec.path), str(e)))
            continue
        if patch is not None and cover is not Cover.NONE:
            face = next(iter(detector.detect(patch)), None)
            patch = None if face is None else apply_cover(patch, face, cover)
        if patch is None:
            unplaced.append((str(rec.path), "no face found" + ("" if rec.box is None else
                                                              f" at the labelled face box (line {rec.line})")))
        else:
            buyers.append(Buyer(len(buyers), str(rec.path), float(rec.age), patch))
        if progress:
            progress(1)
    return buyers, unplaced


def till_background(rng: np.random.Generator) -> np.ndarray:
    """A till background: a vertical gradient in a random muted colour, with some texture."""
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(40, 180, 3)
    t = np.linspace(0, 1, FRAME_H)[:, None, None]
    bg = (top * (1 - t) + bottom * t) * np.ones((1, FRAME_W, 1))
    return np.clip(bg + rng.normal(0, 4, (FRAME_H, FRAME_W, 3)), 0, 255).astype(np.uint8)


def _camera(frame: np.ndarray, rng: np.random.Generator, gain: float = 1.0, noise: float = 3.0) -> np.ndarray:
    """Till-camera changes: the visit's exposure `gain` with a small per-frame flicker (auto exposure
    moves slowly; it does not jump 20 % between frames), sensor noise, JPEG, now and then motion blur."""
    x = frame.astype(np.float32) * gain * rng.normal(1.0, 0.03) + rng.normal(0, noise, frame.shape)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        x = cv2.filter2D(x, -1, kernel)
    ok, enc = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 91))])
    return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED) if ok else x


class Pose(NamedTuple):
    """Where a face is in the 640x480 frame: its centre and the side of its face box (pixels)."""

    cx: float
    cy: float
    face: float


class Visit(NamedTuple):
    """One buyer's stay at the till: where their face is, and the visit's light and sensor noise."""

    pose: Pose
    gain: float
    noise: float


def draw_visit(rng: np.random.Generator, face_px=FACE_PX) -> Visit:
    face = rng.uniform(*face_px)
    cx, cy = FRAME_W / 2 + rng.uniform(-60, 60), FRAME_H / 2 + rng.uniform(-30, 30)
    gain, noise = rng.uniform(0.75, 1.25), rng.uniform(0, 6)  # this visit's light and sensor noise
    return Visit(Pose(cx, cy, face), gain, noise)


def _place(patch: np.ndarray, pose: Pose, dst: np.ndarray) -> np.ndarray:
    """`patch` (a head patch: the face box is its centre 1/CONTEXT) drawn onto `dst` with its face at `pose`."""
    side = pose.face * CONTEXT
    k = side / patch.shape[0]
    m = np.float32([[k, 0, pose.cx - side / 2], [0, k, pose.cy - side / 2]])
    return cv2.warpAffine(patch, m, (FRAME_W, FRAME_H), dst=dst, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_TRANSPARENT)


def visit_frames(buyer: Buyer, n: int, bg: np.ndarray, rng: np.random.Generator, face_px=FACE_PX,
                 visit: Visit | None = None, behind=None):
    """n frames of one buyer in front of the till, each with the face's pose: a face size for the visit (from
    `face_px`, or `visit`), a little sway and zoom. `behind(i, frame)` draws whoever waits behind on frame i
    before the buyer is drawn over them (a queue); it draws from a generator of its own, so that the buyer's
    frames are the same with a queue as without."""
    visit = visit or draw_visit(rng, face_px)
    (cx, cy, face), gain, noise = visit
    for i in range(n):
        side = face * CONTEXT * (1 + 0.04 * np.sin(i / 4 + rng.uniform(0, 1)))
        pose = Pose(cx + rng.normal(0, 3) + 8 * np.sin(i / 5), cy + rng.normal(0, 2), side / CONTEXT)
        frame = bg.copy() if behind is None else behind(i, bg.copy())
        yield _camera(_place(buyer.patch, pose, frame), rng, gain, noise), pose


def buyer_frames(buyer: Buyer, n: int, bg: np.ndarray, rng: np.random.Generator, face_px=FACE_PX):
    """n frames of one buyer alone in front of the till (`visit_frames` without the poses)."""
    for rgb, _ in visit_frames(buyer, n, bg, rng, face_px):
        yield rgb


#: A queue: the next buyer waits this much smaller than the buyer at the till (further from the camera),
#: beside them and a little higher, and steps up in STEP_FRAMES frames (about half a second at 15 frames/s:
#: a brisk step).
QUEUE_SCALE = (0.45, 0.7)
STEP_FRAMES = 8


class Shown(NamedTuple):
    """Who a replay frame shows: the buyer at the till (None: the till is empty) and every face placed, as
    (buyer, pose), the one at the till first."""

    who: int | None
    placed: tuple = ()

    def owner(self, box: FaceBox) -> int | None:
        """The buyer a tracked face `box` belongs to: the one shown when there is one (as the replay has
        always counted, a false face included), else the placed face whose centre is nearest."""
        if len(self.placed) < 2:
            return self.who
        cx, cy = box.center
        return min(self.placed, key=lambda bp: (bp[1].cx - cx) ** 2 + (bp[1].cy - cy) ** 2)[0]


def waiting_pose(front: Pose, rng: np.random.Generator) -> Pose:
    """Where the next buyer waits: smaller, beside the buyer at the till (the side with more room), partly
    behind them."""
    face = front.face * rng.uniform(*QUEUE_SCALE)
    side = -1 if front.cx > FRAME_W / 2 else 1
    cx = front.cx + side * (0.5 * front.face * CONTEXT + face * CONTEXT * rng.uniform(0.1, 0.4))
    return Pose(cx, front.cy - rng.uniform(0, 30), face)


def monochrome(rgb: np.ndarray) -> np.ndarray:
    """A colour frame as a monochrome (night-mode) camera gives it: its luminance in all three channels."""
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def till_frames(buyers: list[Buyer], options: ReplayOptions, tail: int):
    """The replay's whole sequence, seeded: (RGB frame, `Shown`) for the buyers in a random order with empty
    gaps between them, then `tail` empty frames (the last buyer leaves). With `options.queue`, that share of
    buyers waits in view behind the one before them from a random frame of that visit on, and steps up as
    they leave (no gap); the queue draws from a generator of its own, so every buyer's frames at the till are
    those of the replay without a queue, with the one waiting drawn in. With `options.grey`, every frame grey
    (the same draws: the colour replay's frames, their colour taken away)."""
    for rgb, shown in _colour_till_frames(buyers, options, tail):
        yield (monochrome(rgb) if options.grey else rgb), shown


def _colour_till_frames(buyers: list[Buyer], options: ReplayOptions, tail: int):
    rng = np.random.default_rng(options.seed)
    order = rng.permutation(len(buyers))
    bg = till_background(rng)
    queue_rng = np.random.default_rng([options.seed, 1])
    queued = [k > 0 and options.queue > 0 and queue_rng.random() < options.queue for k in range(len(order))]
    waited: Pose | None = None  # where the buyer stepping up now waited
    for k, b in enumerate(order):
        gap = int(rng.integers(options.gap[0], options.gap[1] + 1)) if k else 0
        for _ in range(gap):  # drawn for a buyer who waited too, not shown: the later buyers' frames stay the same
            empty = _camera(bg, rng)
            if not queued[k]:
                yield empty, Shown(None)
        visit = draw_visit(rng, options.face_px)
        if queued[k] and waited is not None:  # from where they waited to the till
            for i in range(1, STEP_FRAMES + 1):
                pose = Pose(*(w + (t - w) * i / STEP_FRAMES for w, t in zip(waited, visit.pose)))
                rgb = _camera(_place(buyers[b].patch, pose, bg.copy()), queue_rng, visit.gain, visit.noise)
                yield rgb, Shown(int(b), ((int(b), pose),))
        waiting, waited = None, None  # waiting(i): where the next buyer stands on frame i (None: not come yet)
        if k + 1 < len(order) and queued[k + 1]:
            nxt = int(order[k + 1])
            waited, arrives = waiting_pose(visit.pose, queue_rng), int(queue_rng.integers(0, options.frames))
            sways = queue_rng.normal(0, 2, (options.frames, 2))

            def waiting(i, at=waited, arrives=arrives, sways=sways):
                return None if i < arrives else at._replace(cx=at.cx + sways[i, 0], cy=at.cy + sways[i, 1])

            def behind(i, frame, nxt=nxt, waiting=waiting):
                return frame if waiting(i) is None else _place(buyers[nxt].patch, waiting(i), frame)

        frames = visit_frames(buyers[b], options.frames, bg, rng, options.face_px, visit,
                              None if waiting is None else behind)
        for i, (rgb, pose) in enumerate(frames):
            placed = ((int(b), pose),)
            if waiting is not None and waiting(i) is not None:
                placed += ((nxt, waiting(i)),)
            yield rgb, Shown(int(b), placed)
    for _ in range(tail):
        yield _camera(bg, rng), Shown(None)


@dataclass
class ReplayRun:
    """What one replay gave: every buyer's outcome, and the stream's size and timings."""

    outcomes: list[BuyerOutcome]
    frames: int
    seconds: float
    empty_ms: list[float]
    face_ms: list[float]
    false_decisions: int = 0  # decisions on tracks that never showed a buyer: a false face on the empty till

    def summary(self) -> dict:
        return {**summarize(self.outcomes, self.frames, self.seconds, self.empty_ms, self.face_ms),
                "false_decisions": self.false_decisions}


#: Keys of a replay summary that hold a row per buyer or per threshold (for choosing and drawing), not figures.
ROW_KEYS = ("buyer_risks", "buyer_paths", "buyer_turns", "risk_curve")


def summary_figures(summary: dict) -> dict:
    """A replay summary without its rows (ROW_KEYS): the figures calibrate, qa and the probes report."""
    return {k: v for k, v in summary.items() if k not in ROW_KEYS}


#: Counts of a replay summary that `over_draws` averages.
DRAW_COUNTS = ("minors_decided_ok", "adults_asked", "merged", "split_buyers", "missed")


def over_draws(summaries: list[dict]) -> dict:
    """Several draws of the same buyers (`replay_draws`) together: each count the mean over the draws, so a
    minor decided ok in one draw of three counts a third, as `calibrate --draws` counts them, and what one draw's
    luck adds to a figure is averaged out; the decided share and MAE are the draws' means."""
    first = summaries[0]
    people = ("buyers", "minors", "adults_25plus")
    if any(s[k] != first[k] for s in summaries for k in people):
        raise ValueError("the draws hold different buyers; over_draws needs replays of the same buyers")
    n = len(summaries)
    mean = {k: sum(s[k] for s in summaries) / n for k in DRAW_COUNTS}
    maes = [s["mae"] for s in summaries if s["mae"] is not None]
    return {"draws": n, **{k: first[k] for k in people}, **{k: round(v, 4) for k, v in mean.items()},
            "minors_ok_share": round(mean["minors_decided_ok"] / first["minors"], 6) if first["minors"] else None,
            "adults_asked_share": (round(mean["adults_asked"] / first["adults_25plus"], 6)
                                   if first["adults_25plus"] else None),
            "decided_share": round(sum(s["decided_share"] for s in summaries) / n, 4),
            "mae": round(sum(maes) / len(maes), 4) if maes else None}


def replay(pipeline, buyers: list[Buyer], options: ReplayOptions, progress=None) -> dict:
    """Run the buyers through `pipeline` (a BoxPipeline) and score its decisions per buyer."""
    return run_buyers(pipeline, buyers, options, progress).summary()


def run_buyers(pipeline, buyers: list[Buyer], options: ReplayOptions, progress=None) -> ReplayRun:
    """The replay itself: the till's frames through `pipeline`, each decision matched to its buyer."""
    shown: list[int | None] = []  # buyer index per frame (None: empty till)
    track_frames: dict[int, Counter] = defaultdict(Counter)  # track id -> buyer -> frames
    decisions = []
    seen: dict[int, list[float]] = {}  # buyer -> [first, last] frame time at the till
    waited: dict[int, float] = {}  # buyer -> first frame time seen waiting behind another (a queue)
    answers: dict[int, tuple[int | None, bool]] = {}  # buyer -> (track, provisional) at their newest till frame
    made_at: dict[int, float] = {}  # track id -> frame time its decision came out of process() (or finish())
    empty_ms, face_ms = [], []
    t_frame, t0 = 1.7e9, time.perf_counter()
    for rgb, now in till_frames(buyers, options, tail=pipeline.options.max_missed + 2):
        who = now.who
        t_frame += 1 / FPS
        f0 = time.perf_counter()
        made = pipeline.process(Frame(len(shown), t_frame, rgb, steady=t_frame))  # the till's timeline
        (face_ms if who is not None else empty_ms).append((time.perf_counter() - f0) * 1000)
        if progress and who is not None and (not shown or shown[-1] != who):
            progress(1)
        shown.append(who)
        if who is not None:
            seen.setdefault(who, [t_frame, t_frame])[1] = t_frame
            answering = pipeline.answering_track()
            answers[who] = (None, False) if answering is None else (answering.track_id, answering.decision is None)
        for b, _ in now.placed[1:]:
            waited.setdefault(b, t_frame)
        for t in pipeline.tracker.tracks.values():
            if t.last_ts == t_frame:
                track_frames[t.track_id][now.owner(t.box)] += 1
        decisions.extend(made)
        made_at.update((d.track_id, t_frame) for d in made)
    last = pipeline.finish()
    decisions.extend(last)
    made_at.update((d.track_id, t_frame) for d in last)
    seconds = time.perf_counter() - t0
    outcomes = match_decisions(buyers, decisions, track_frames)
    for o in outcomes:
        b = o.buyer.index
        o.shown = tuple(seen[b]) if b in seen else None
        o.answered = made_at[o.decisions[0].track_id] if o.decisions else None
        o.waited = waited.get(b)
        track, o.till_answer_provisional = answers.get(b, (None, False))
        o.till_answer_for = None if track is None else track_owner(track_frames.get(track, Counter()))
    return ReplayRun(outcomes, len(shown), seconds, empty_ms, face_ms, len(false_decisions(decisions, track_frames)))


def track_owner(counts: Counter) -> int | None:
    """The buyer shown in most of a track's frames (None: it never showed one)."""
    people = Counter({k: v for k, v in counts.items() if k is not None})
    return people.most_common(1)[0][0] if people else None


def match_decisions(buyers, decisions, track_frames) -> list[BuyerOutcome]:
    """Each decision to the buyer shown in most of its track's frames; a buyer without one (merged) inherits
    the decision of the track that covered most of their frames."""
    outcomes = {b.index: BuyerOutcome(b) for b in buyers}
    by_track = {}
    for d in decisions:
        by_track[d.track_id] = d
        owner = track_owner(track_frames.get(d.track_id, Counter()))
        if owner is not None:
            outcomes[owner].decisions.append(d)
    for o in outcomes.values():  # merged buyers inherit the decision of the track that covered most of them
        if not o.decisions:
            cover = Counter({tid: c[o.buyer.index] for tid, c in track_frames.items() if c.get(o.buyer.index)})
            if cover:
                o.inherited = by_track.get(cover.most_common(1)[0][0])
    return list(outcomes.values())


def false_decisions(decisions, track_frames) -> list:
    """Decisions whose track never showed a buyer (only empty frames, or no frame recorded): a face the
    detector saw on an empty till. `match_decisions` leaves them out; a store would count them."""
    return [d for d in decisions if not any(k is not None for k in track_frames.get(d.track_id, ()))]


@dataclass(frozen=True)
class BuyerGroups:
    """A replay's buyers sorted the one way every figure counts them (`summarize`, and `queue_figures` for the
    buyers who waited and those who did not)."""

    own: list  # with a decision of their own (the first is the one they were served)
    merged: list  # none of their own: the decision of the track that covered them
    # no decision of theirs or of a track that covered them: never found by the detector, or seen only in
    # pieces the box drops (a glimpse, a fragment broken off by the next face): the till asks them for ID
    missed: list
    split: list  # more than one decision of their own
    decided: list  # their own first decision ok or id_check
    aged: list  # their own first decision has an age
    minors: list
    adults: list  # 25 and over
    passed: list  # minors served `ok`
    # a buyer the box never saw gets no answer: the till asks for ID by default, so adults count as asked
    asked: list

    @classmethod
    def of(cls, outcomes: list[BuyerOutcome]) -> "BuyerGroups":
        own = [o for o in outcomes if o.decisions]
        minors = [o for o in outcomes if o.buyer.age < MINOR_AGE]
        adults = [o for o in outcomes if o.buyer.age >= CHALLENGE_AGE]
        return cls(own=own,
                   merged=[o for o in outcomes if not o.decisions and o.inherited is not None],
                   missed=[o for o in outcomes if not o.decisions and o.inherited is None],
                   split=[o for o in outcomes if len(o.decisions) > 1],
                   decided=[o for o in own if o.decisions[0].decision != Decision.UNCERTAIN],
                   aged=[o for o in own if o.decisions[0].age is not None],
                   minors=minors, adults=adults,
                   passed=[o for o in minors if o.final is not None and o.final.decision == Decision.OK],
                   asked=[o for o in adults if o.final is None or o.final.decision != Decision.OK])


def summarize(outcomes: list[BuyerOutcome], frames: int, seconds: float, empty_ms, face_ms) -> dict:
    n = len(outcomes)
    g = BuyerGroups.of(outcomes)
    own, merged, missed, split, decided, aged = g.own, g.merged, g.missed, g.split, g.decided, g.aged
    minors, adults, passed, asked = g.minors, g.adults, g.passed, g.asked
    reasons = Counter(reason_code(o.decisions[0].reason) for o in own if o.decisions[0].decision == Decision.UNCERTAIN)
    err = np.array([o.decisions[0].age - o.buyer.age for o in aged]) if aged else np.zeros(0)
    bands: dict[str, dict] = {}
    for o in aged:
        bands.setdefault(band_of(o.buyer.age), []).append(o.decisions[0].age - o.buyer.age)
    r = lambda x: None if x is None else round(float(x), 4)  # noqa: E731
    share = lambda part, whole: r(len(part) / len(whole)) if whole else None  # noqa: E731
    out = {
        "buyers": n, "frames": frames, "seconds": round(seconds, 2), "fps": r(frames / seconds) if seconds else None,
        "decided_share": share(decided, outcomes), "own_decision_share": share(own, outcomes),
        "merged": len(merged), "merged_share": share(merged, outcomes),
        "missed": len(missed), "missed_share": share(missed, outcomes),
        "split_buyers": len(split), "split_share": share(split, outcomes),
        "mae": r(np.abs(err).mean()) if len(err) else None, "bias": r(err.mean()) if len(err) else None,
        "bands": {b: {"n": len(v), "mae": r(np.abs(v).mean()), "bias": r(np.mean(v))}
                  for b, v in sorted(bands.items())},
        # the marketing counts: each buyer's own first decision, in the band of its fused age
        "band_shares": band_shares([o.buyer.age for o in aged], [o.decisions[0].age for o in aged]) if aged else None,
        "minors": len(minors), "minors_decided_ok": len(passed), "minors_ok_share": share(passed, minors),
        "adults_25plus": len(adults), "adults_asked": len(asked), "adults_asked_share": share(asked, adults),
        "uncertain_reasons": dict(reasons),
        **answer_times(own),
        "empty_frame_p50_ms": r(np.median(empty_ms)) if empty_ms else None,
        "face_frame_p50_ms": r(np.median(face_ms)) if face_ms else None,
        "minors_passed": [{"path": o.buyer.path, "age": o.buyer.age, "estimate": o.final.age,
                           "merged": not o.decisions} for o in passed],
        **till_answers(outcomes),
    }
    if any(o.waited is not None for o in outcomes):
        out["by_queue"] = queue_figures(outcomes)
    if any(o.final is not None and getattr(o.final, "risk", None) is not None for o in outcomes):
        ages, risks = buyer_risks(outcomes)
        out["buyer_risks"] = [[a, round(float(k), RISK_DECIMALS)] for a, k in zip(ages.tolist(), risks.tolist())]
        out["buyer_paths"] = [o.buyer.path for o in outcomes]  # row by row with buyer_risks
        # how far the box saw each buyer turned (BuyerDecision.turn; None: never seen, or no key points)
        out["buyer_turns"] = [None if o.final is None or getattr(o.final, "turn", None) is None
                              else round(float(o.final.turn), 3) for o in outcomes]
        out["risk_curve"] = tradeoff_curve(risks, ages)
    return out


def till_answers(outcomes: list[BuyerOutcome]) -> dict:
    """What the till was told when it asked at each buyer's last frame at the till (GET /decision answers for
    the largest face in view): for how many buyers the answer was another person's track, or no face's, and
    for how many it was provisional (their decision not made yet)."""
    asked = [o for o in outcomes if o.shown is not None]
    return {"till_answers_for_someone_else": sum(o.till_answer_for != o.buyer.index for o in asked),
            "till_answers_provisional": sum(o.till_answer_provisional for o in asked)}


def queue_figures(outcomes: list[BuyerOutcome]) -> dict:
    """The buyers who waited in view behind another (a queue) against those who did not: decided, merged,
    split, the MAE of their ages, minors ok and 25+ asked, and how many were decided while still waiting
    (from their frames behind the buyer before, smaller and partly hidden)."""
    def figures(group: list[BuyerOutcome]) -> dict:
        g = BuyerGroups.of(group)
        return {"buyers": len(group), "decided": len(g.decided), "merged": len(g.merged), "split": len(g.split),
                "mae": round(float(np.mean([abs(o.decisions[0].age - o.buyer.age) for o in g.aged])), 4) if g.aged
                else None,
                "minors": len(g.minors), "minors_decided_ok": len(g.passed),
                "adults_25plus": len(g.adults), "adults_asked": len(g.asked)}

    queued = [o for o in outcomes if o.waited is not None]
    early = [o for o in queued if o.answered is not None and o.shown is not None and o.answered < o.shown[0]]
    return {"queued": figures(queued), "not_queued": figures([o for o in outcomes if o.waited is None]),
            "decided_while_waiting": len(early)}


def answer_times(own: list[BuyerOutcome]) -> dict:
    """How long the till waits: camera seconds from a buyer's first frame to their own decision (p50, p95;
    one frame is 1/FPS), and the share of them answered while still shown, not only once they had gone (a
    track decided when it ends, with fewer than `decide_after` good frames). Merged buyers are left out:
    the answer they got was someone else's."""
    waits = [o.answered - o.shown[0] + 1 / FPS for o in own if o.shown is not None and o.answered is not None]
    present = [o for o in own if o.shown is not None and o.answered is not None and o.answered <= o.shown[1]]
    return {"seconds_to_decision_p50": round(float(np.percentile(waits, 50)), 3) if waits else None,
            "seconds_to_decision_p95": round(float(np.percentile(waits, 95)), 3) if waits else None,
            "decided_while_shown_share": round(len(present) / len(own), 4) if own else None}


def buyer_risks(outcomes: list[BuyerOutcome]) -> tuple[np.ndarray, np.ndarray]:
    """(true age, effective risk) per buyer, for choosing a per-buyer operating point: the risk of the
    decision the buyer was served with (their own, or the track they were merged into); BLOCKED_RISK where
    the buyer could not pass at any threshold (`uncertain`, or never seen)."""
    ages, risks = [], []
    for o in outcomes:
        f = o.final
        blocked = f is None or f.decision == Decision.UNCERTAIN or f.risk is None
        ages.append(o.buyer.age)
        risks.append(BLOCKED_RISK if blocked else f.risk)
    return np.array(ages, np.float64), np.array(risks, np.float64)
