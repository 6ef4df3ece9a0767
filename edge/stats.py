"""Runtime metrics of the box (Prometheus text) and the marketing view of events."""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from datetime import datetime
from pathlib import Path

import numpy as np

from .bands import BAND_LABELS
from .contracts import CLOCK_FLOOR
from .decision import Decision, reason_code
from .events import Event
from .setup_view import MAX_SETUP_TURN

STAGES = ("capture", "detect", "crop", "look", "infer", "fuse")
#: /healthz turns "degraded" when no frame was processed for this long: a live camera sends 15-30 per second
#: even at an empty till, so a few seconds of silence is a dead camera or a stuck pipeline.
STALE_S = 5.0


class RuntimeMetrics:
    """Counters and per-stage latency windows, read by the HTTP endpoint's /metrics."""

    def __init__(self, window: int = 1000):
        self._lock = threading.Lock()
        # Durations on the steady clock: the wall clock jumps when NTP sets it (a box without a battery clock
        # boots hours off), and a jump back once hid a stalled pipeline from /healthz for as long.
        self.started = time.monotonic()
        self.frames = 0
        self.faces = 0
        self.decisions: Counter = Counter()
        self.latency: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES + ("frame",)}
        self._frame_times: deque = deque(maxlen=120)
        self.dropped = 0
        self.reconnects = 0
        self.glimpses = 0  # faces seen too briefly to be a buyer (no decision)
        self.bystanders = 0  # faces only ever seen behind a larger one (someone waiting who left; no decision)
        self.source_connected = True
        self.source_error: str | None = None
        self.last_frame_at: float | None = None  # steady-clock time of the newest processed frame

    def observe(self, stage: str, ms: float) -> None:
        with self._lock:
            self.latency[stage].append(ms)

    def frame_done(self, faces: int) -> None:
        with self._lock:
            self.frames += 1
            self.faces += faces
            self._frame_times.append(time.perf_counter())
            self.last_frame_at = time.monotonic()

    def glimpse(self) -> None:
        with self._lock:
            self.glimpses += 1

    def bystander(self) -> None:
        with self._lock:
            self.bystanders += 1

    def decision(self, kind: str) -> None:
        with self._lock:
            self.decisions[str(kind)] += 1

    def fps(self) -> float:
        with self._lock:
            t = list(self._frame_times)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def percentiles(self, stage: str) -> tuple[float, float]:
        with self._lock:
            v = list(self.latency[stage])
        return (float(np.percentile(v, 50)), float(np.percentile(v, 95))) if v else (0.0, 0.0)

    def health(self, budget_ms: float | None = None, events_error: str | None = None, stale_s: float = STALE_S,
               now: float | None = None) -> dict:
        """What /healthz says: ok only while frames arrive and are processed (an empty till still sends
        frames); the problems, each in words, otherwise. `now`: on the steady clock (time.monotonic)."""
        now = time.monotonic() if now is None else now
        problems = []
        since = None if self.last_frame_at is None else now - self.last_frame_at
        if not self.source_connected:
            problems.append(f"camera not connected ({self.source_error or 'no error reported'}); "
                            f"{self.reconnects} reconnect attempts")
        if since is None and now - self.started > stale_s:
            problems.append(f"no frame processed in {now - self.started:.0f}s since start")
        elif since is not None and since > stale_s:
            problems.append(f"no frame processed for {since:.0f}s")
        if events_error:
            problems.append(f"events: {events_error}")
        p50, _ = self.percentiles("infer")
        if budget_ms and self.faces and p50 > budget_ms:
            problems.append(f"inference p50 {p50:.1f} ms is over the budget {budget_ms:g} ms")
        return {"status": "ok" if not problems else "degraded", "problems": problems, "frames": self.frames,
                "fps": round(self.fps(), 2), "reconnects": self.reconnects, "camera_connected": self.source_connected,
                "seconds_since_frame": None if since is None else round(since, 2)}

    def prometheus(self, model_label: str | None = None) -> str:
        """The counters as Prometheus text; `model_label` (AgeModel.label) adds agegate_model_info, so a fleet's
        monitoring sees which model each box runs (an install takes effect only after a restart)."""
        lines = [
            "# HELP agegate_fps Frames processed per second (last 120 frames).", "# TYPE agegate_fps gauge",
            f"agegate_fps {self.fps():.3f}",
            "# TYPE agegate_frames_total counter", f"agegate_frames_total {self.frames}",
            "# TYPE agegate_faces_total counter", f"agegate_faces_total {self.faces}",
            "# TYPE agegate_dropped_frames_total counter", f"agegate_dropped_frames_total {self.dropped}",
            "# HELP agegate_glimpses_total Faces seen too briefly to be a buyer (no decision).",
            "# TYPE agegate_glimpses_total counter", f"agegate_glimpses_total {self.glimpses}",
            "# HELP agegate_bystanders_total Faces only ever seen behind a larger one (no decision).",
            "# TYPE agegate_bystanders_total counter", f"agegate_bystanders_total {self.bystanders}",
            "# TYPE agegate_reconnects_total counter", f"agegate_reconnects_total {self.reconnects}",
            "# HELP agegate_camera_connected 1 while the camera or stream is open.",
            "# TYPE agegate_camera_connected gauge", f"agegate_camera_connected {int(self.source_connected)}",
            "# HELP agegate_decisions_total Buyer decisions by kind.", "# TYPE agegate_decisions_total counter",
        ]
        for kind in Decision:
            lines.append(f'agegate_decisions_total{{decision="{kind}"}} {self.decisions.get(str(kind), 0)}')
        lines += ["# HELP agegate_stage_latency_ms Per-stage latency percentiles.",
                  "# TYPE agegate_stage_latency_ms gauge"]
        for stage in STAGES + ("frame",):
            p50, p95 = self.percentiles(stage)
            lines.append(f'agegate_stage_latency_ms{{stage="{stage}",quantile="0.5"}} {p50:.3f}')
            lines.append(f'agegate_stage_latency_ms{{stage="{stage}",quantile="0.95"}} {p95:.3f}')
        lines.append(f"agegate_uptime_seconds {time.monotonic() - self.started:.1f}")
        if model_label is not None:
            label = model_label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            lines += ["# HELP agegate_model_info The model this box runs (bundle name and version, 12 hex of its "
                      "SHA-256).", "# TYPE agegate_model_info gauge", f'agegate_model_info{{model="{label}"}} 1']
        return "\n".join(lines) + "\n"


#: The by-hour / by-day row of decisions timed before the box's clock was set.
UNCLOCKED = "clock not set"
#: How `summarize_events` names its by-hour and by-day rows (local time), and how the chart reads them back.
ROW_FORMATS = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}


def summarize_events(events: list[Event], by: str = "band") -> dict:
    """Buyers per band (and per hour or day), share of ID checks: the brief's marketing table."""
    if by not in ("band", "hour", "day"):
        raise ValueError("by must be band, hour or day")
    total = len(events)
    checks = sum(e.decision != Decision.OK for e in events)
    out: dict = {"buyers": total, "id_checks": checks,
                 "id_check_share": round(checks / total, 4) if total else None,
                 "by_band": {b: sum(e.band == b for e in events) for b in BAND_LABELS},
                 "decisions": dict(Counter(e.decision for e in events)),
                 # a box whose uncertain share rises has a camera that moved or a lamp that died: the reasons say which
                 "uncertain_reasons": dict(Counter(reason_code(e.reason) or "unknown" for e in events
                                                   if e.decision == Decision.UNCERTAIN))}
    # buyers seen turned past the set-up line: most of them, a camera beside where buyers look (README, "Turned faces")
    turns = [e.turn for e in events if e.turn is not None]
    out["buyers_with_turn"] = len(turns)
    out["turned_share"] = round(sum(t > MAX_SETUP_TURN for t in turns) / len(turns), 4) if turns else None
    if by in ("hour", "day"):
        fmt = ROW_FORMATS[by]
        table: dict[str, Counter] = defaultdict(Counter)
        for e in events:
            # before any agegate box ran: a box clock not set (events.py holds such rows until it is, unless the
            # box stopped first); one row, not buyers on days in 1970
            key = UNCLOCKED if e.ts < CLOCK_FLOOR else time.strftime(fmt, time.localtime(e.ts))
            table[key][e.band or "unknown"] += 1
            table[key]["_id_checks"] += e.decision != Decision.OK
        out["by_" + by] = {k: {**{b: v.get(b, 0) for b in BAND_LABELS}, "id_checks": v["_id_checks"],
                               "buyers": sum(v.get(b, 0) for b in BAND_LABELS) + v.get("unknown", 0)}
                           for k, v in sorted(table.items())}
    return out


def write_chart(summary: dict, by: str, path: Path) -> None:
    """A PNG of `summarize_events(..., by)` (`agegate edge stats --png`, the demo)."""
    from .figures import save_figure

    save_figure(draw_chart(summary, by), path)


def draw_chart(summary: dict, by: str):
    """The figure of `summarize_events(..., by)`: buyers per band, or per hour/day stacked by band on a time axis.
    Hours or days without buyers stay as gaps, and the dates are ticked by the span shown: a month of hours was
    once 700 bars side by side, each named. Buyers a bar cannot show (no age band; decided before the box's clock
    was set) are counted under the title."""
    from .band_chart import stack_bands, time_axis
    from .figures import counts_axis, pyplot

    fig, ax = pyplot().subplots(figsize=(9, 3.6))
    share = summary["id_check_share"]
    unaged = summary["buyers"] - sum(summary["by_band"].values())  # uncertain with no face good enough to age
    left_out = [f"{unaged} with no age band (uncertain, no face to age)"] if unaged else []
    if by == "band":
        ax.bar(BAND_LABELS, [summary["by_band"][b] for b in BAND_LABELS], color="#3b6ea8")
        ax.set_ylabel("buyers")
        counts_axis(ax)
    else:
        rows = summary["by_" + by]
        keys = [k for k in rows if k != UNCLOCKED]
        if keys:
            times = [datetime.strptime(k, ROW_FORMATS[by]) for k in keys]
            stack_bands(ax, times, [rows[k] for k in keys], width=0.9 / 24 if by == "hour" else 0.9)
            time_axis(ax)
        else:  # no buyer, or none dated: an empty chart says so (it drew an empty day of 1970)
            ax.text(0.5, 0.5, f"no buyer to draw per {by}", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        unclocked = rows.get(UNCLOCKED, {}).get("buyers", 0)
        left_out += [f"{unclocked} decided before the box's clock was set"] if unclocked else []
    per = "by age band" if by == "band" else f"per {by} by age band"
    n = summary["buyers"]
    ax.set_title(f"Buyers {per} ({n} buyer{'' if n == 1 else 's'}, ID checks {0 if share is None else share:.0%})"
                 + (f"\nnot drawn: {'; '.join(left_out)}" if left_out else ""), fontsize=10)
    return fig
