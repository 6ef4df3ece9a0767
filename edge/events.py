"""The box's event store: one row per buyer decision, in SQLite (WAL mode).

What is kept (the event row of the design sketch, ../shared/DESIGN.md): ts, box_id, track_id, age, band, frames,
decision, latency_ms, the reason of an `uncertain` decision, the buyer's P(under 25) (distribution
models) and which model decided. Never an image, a
crop or an embedding: biometric data stays in memory on the box and is dropped with
the track. Rows older than the retention
period are deleted on open and every hour, by a clock that a jump of the box's clock years ahead does not move
(`EventStore.retention_now`).

What the box does not let stop it or skew the chain's figures: a full disk (decisions wait in memory), a
damaged database (kept aside, a new one started), a clock not set yet (decisions held and timed by the steady
clock once it is), a new database beside an export watermark (its ids continue after the mark).
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .contracts import CLOCK_FLOOR, CLOCK_FLOOR_DATE
from .errors import AgegateError

log = logging.getLogger("agegate.edge")
#: Decisions held in memory while the database cannot be written (disk full, read-only): about a
#: week of a busy till. The box keeps deciding (the till needs its answers); /healthz says why.
MAX_PENDING = 10_000
#: How far the wall clock may run ahead of the steady clock between two retention purges before a purge stops
#: trusting it. NTP steps a drifting clock by seconds and a box that booted on its last shutdown time by its
#: downtime; a clock set years ahead (a wrong time server) would make the next purge delete every decision of
#: the retention period, exported or not, and no later correction brings them back.
CLOCK_JUMP_SLACK_S = 86400.0

#: Columns added after the first schema, with their type: a new database gets them in CREATE TABLE;
#: opening an older one adds them (ALTER TABLE ... ADD COLUMN), and readers of an older, read-only one see NULL.
MIGRATIONS = (("reason", "TEXT"), ("p_under_25", "REAL"), ("model", "TEXT"), ("store_id", "TEXT"),
              ("till_id", "TEXT"), ("turn", "REAL"))
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    box_id TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    age REAL,
    band TEXT,
    frames INTEGER NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('ok', 'id_check', 'uncertain')),
    latency_ms REAL""" + "".join(f",\n    {column} {kind}" for column, kind in MIGRATIONS) + """
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


@dataclass(frozen=True)
class Event:
    """One persisted buyer decision: the fields of the pipeline's BuyerDecision that may leave memory."""

    ts: float
    box_id: str
    track_id: int
    age: float | None
    band: str | None
    frames: int
    decision: str
    latency_ms: float
    reason: str | None = None
    p_under_25: float | None = None  # the buyer's calibrated risk (distribution models)
    model: str | None = None  # which model decided: bundle name and version (or file name), ':', 12 hex of its SHA-256
    store_id: str | None = None  # box.toml's box.store and box.till
    till_id: str | None = None
    turn: float | None = None  # how far the buyer was turned from the camera (BuyerDecision.turn)

    @classmethod
    def from_decision(cls, d, ts: float, box_id: str, model: str | None = None, store_id: str = "",
                      till_id: str = "") -> "Event":
        """From a pipeline.BuyerDecision (its box and per-frame data stay behind)."""
        return cls(ts, box_id, d.track_id, d.age, d.band, d.frames, str(d.decision), d.latency_ms, d.reason or None,
                   None if d.risk is None else round(d.risk, 4), model, store_id or None, till_id or None,
                   None if d.turn is None else round(d.turn, 2))

    def to_dict(self) -> dict:
        return asdict(self)


EVENT_FIELDS = tuple(f.name for f in fields(Event))


def migrate(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    for column, kind in MIGRATIONS:
        if column not in have:
            db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")


class EventStore:
    def __init__(self, path: str | Path, retention_days: float = 90.0):
        self.path = Path(path)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self.pending: deque[Event] = deque(maxlen=MAX_PENDING)  # decided, not yet written
        # Decided while the box's clock was not set, each with its time on the steady clock (`_hold`).
        self.unclocked: deque[tuple[float, Event]] = deque(maxlen=MAX_PENDING)
        self.lost = 0  # dropped from a full `pending`
        self.error: str | None = None  # why the newest write failed; None once writes succeed again
        self.set_aside: Path | None = None  # where a damaged database went (start_anew)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as e:
                # Not a database, or a malformed one (a card that failed, a file copied over it): the till
                # still needs its answers, so the box keeps the file aside and starts anew. OperationalError
                # (no permission, no such folder, disk full) is the path's problem, said below.
                if isinstance(e, sqlite3.OperationalError) or not self.path.is_file():
                    raise
                self._db = self.start_anew(e)
            self.continue_after_export()
        except (sqlite3.Error, OSError) as e:
            raise AgegateError(f"{self.path}: cannot open the events database ({e}); check the path "
                               f"(events.path / --events), its permissions and free space") from e
        self._counted: tuple[float, float] | None = None  # (wall, steady) of the last purge: `retention_now`
        self._ahead_said = False
        self.purge()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def start_anew(self, why: Exception) -> sqlite3.Connection:
        """Move a damaged database (and its WAL side files) aside as `<name>.damaged-<time>` and open a new one.
        The rows of the damaged file that were not exported yet may be rescued by hand (`sqlite3 FILE .recover`)."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.set_aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for side in ("", "-wal", "-shm"):
            if (f := self.path.with_name(self.path.name + side)).exists():
                os.replace(f, self.set_aside.with_name(self.set_aside.name + side))
        log.warning("events: %s is damaged (%s); kept as %s (`sqlite3 %s .recover` may rescue its rows) and a new "
                    "database started", self.path, why, self.set_aside, self.set_aside)
        return self._connect()

    def continue_after_export(self) -> None:
        """Number this database's rows after the last one `agegate edge export` took (its watermark beside the
        file) when they lie below it: a new database (the first, one after a damaged file, one after the old was
        deleted to free space) would otherwise count from 1, and the export, which takes the rows above its
        mark, would skip every one of them up to the mark. Rows already there (written by an agegate before
        this) are moved up by the mark when they were decided after the last export: the rows of a new
        database. Older ones (a database restored from a backup) were exported when they were first written,
        and stay below the mark."""
        from .export import read_watermark

        try:
            watermark = read_watermark(self.path)
        except AgegateError:
            return  # an unreadable watermark: export says so itself
        exported = watermark.last_id
        try:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        except sqlite3.OperationalError:  # a table made without AUTOINCREMENT (not by the box): ids are not its
            return
        seq = int(row[0]) if row else 0
        if exported <= seq:
            return
        self._db.execute("BEGIN")
        if seq:
            self._db.execute("UPDATE events SET id = id + ? WHERE ts > ?", (exported, watermark.updated or 0.0))
            self._db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (seq + exported,))
        else:
            self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
            self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (exported,))
        self._db.execute("COMMIT")
        log.warning("events: %s numbered its rows below the export watermark (%d): they now follow it, so "
                    "`agegate edge export` takes them", self.path, exported)

    def add(self, e: Event) -> None:
        """Write one decision. A failed write (disk full) keeps it in memory and retries on the next; one
        decided before the box's clock was set is held until it is (`_hold`)."""
        with self._lock:
            if e.ts < CLOCK_FLOOR:
                self._hold(e)
                return
            self._time_held()
            if len(self.pending) == self.pending.maxlen:
                self.lost += 1
            self.pending.append(e)
            self._write_pending()
        if time.monotonic() - self._last_purge > 3600:
            self.purge()

    def _hold(self, e: Event) -> None:
        """A box without a battery clock decides from boot, before NTP sets its clock (1970, or the time it was
        switched off): those times would put the buyers on days they never came. The decision is kept with its
        time on the steady clock, which does not jump, and timed from it once the wall clock is set."""
        if not self.unclocked:
            log.warning("events: the box clock says %s, before any agegate box ran (%s): holding decisions until "
                        "it is set (NTP), then timing them by the steady clock", time.strftime("%Y-%m-%d %H:%M",
                        time.gmtime(e.ts)), CLOCK_FLOOR_DATE)
        if len(self.unclocked) == self.unclocked.maxlen:  # days without NTP: the oldest goes in with its time
            self.pending.append(self.unclocked.popleft()[1])  # (the fleet report leaves it out), not dropped
            self._write_pending()
        self.unclocked.append((time.monotonic() - (time.time() - e.ts), e))

    def _time_held(self) -> None:
        """Once the clock is set, give each held decision its true time and queue it for writing."""
        if not self.unclocked or time.time() < CLOCK_FLOOR:
            return
        wall, steady = time.time(), time.monotonic()
        for at, e in self.unclocked:
            self.pending.append(replace(e, ts=wall - (steady - at)))
        log.info("events: the box clock is set; %d decision(s) held meanwhile timed and written", len(self.unclocked))
        self.unclocked.clear()

    def _write_pending(self) -> None:
        sql = f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) VALUES ({', '.join('?' * len(EVENT_FIELDS))})"
        try:
            self._db.execute("BEGIN")
            self._db.executemany(sql, [tuple(getattr(e, f) for f in EVENT_FIELDS) for e in self.pending])
            self._db.execute("COMMIT")
        except sqlite3.Error as err:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if self.error is None:
                log.error("events: cannot write %s (%s); keeping decisions in memory (%d) and retrying",
                          self.path, err, len(self.pending))
            self.error = f"cannot write {self.path}: {err} ({len(self.pending)} decision(s) waiting in memory)"
            return
        self.pending.clear()
        self.error = None

    def retention_now(self) -> float:
        """The time a purge deletes by: the wall clock, unless it ran ahead of the steady clock by more than
        CLOCK_JUMP_SLACK_S since the last purge; then the last purge's time plus the steady time since, until the
        wall clock agrees again. A clock before CLOCK_FLOOR (not set yet) deletes nothing and counts from nothing; a
        box restarted while its clock is wrong has no reference and purges by it."""
        wall, steady = time.time(), time.monotonic()
        if wall < CLOCK_FLOOR:  # a clock not set yet (1970 on a box without a battery clock) is no reference
            return wall
        if self._counted is not None:
            counted = self._counted[0] + (steady - self._counted[1])
            ahead = wall > counted + CLOCK_JUMP_SLACK_S
            if ahead and not self._ahead_said:  # said once a jump: the purge runs every hour
                log.warning("events: the box clock says %s, %.0f days ahead of the time the box has counted since "
                            "its last retention purge; purging by the counted time (%s) until the clock agrees or "
                            "the box restarts, so that no decision is deleted early", time.strftime(
                                "%Y-%m-%d %H:%M", time.gmtime(wall)), (wall - counted) / 86400,
                            time.strftime("%Y-%m-%d %H:%M", time.gmtime(counted)))
            self._ahead_said = ahead
            wall = counted if ahead else wall
        self._counted = (wall, steady)
        return wall

    def purge(self, now: float | None = None) -> int:
        """Delete the rows older than the retention period at `now` (default: `retention_now`)."""
        now = self.retention_now() if now is None else now
        self._last_purge = time.monotonic()
        if self.retention_days <= 0:
            return 0
        cutoff = now - self.retention_days * 86400
        with self._lock:
            try:
                self._warn_unexported(cutoff)
                cur = self._db.execute("DELETE FROM events WHERE ts < ?", (cutoff,))
            except sqlite3.Error as e:  # a full disk must not stop the box; the next purge tries again
                log.warning("events: retention purge failed (%s)", e)
                return 0
        return cur.rowcount

    def _warn_unexported(self, cutoff: float) -> None:
        """Retention deletes what it must, exported or not; where the box exports (a watermark beside the
        database), rows deleted before any export took them are lost to the chain's report: say how many."""
        from .export import read_watermark, watermark_path

        if not watermark_path(self.path).exists():
            return  # this box does not export
        try:
            exported = read_watermark(self.path).last_id
        except AgegateError:
            return
        n = self._db.execute("SELECT count(*) FROM events WHERE ts < ? AND id > ?", (cutoff, exported)).fetchone()[0]
        if n:
            log.warning("events: %d decision(s) past the %g-day retention were never exported (the export's last "
                        "row is %d); deleted as retention requires, and missing from the fleet report: run `agegate "
                        "edge export` more often than every %g days", n, self.retention_days, exported,
                        self.retention_days)

    def all(self) -> list[Event]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(EVENT_FIELDS)} FROM events ORDER BY ts, id").fetchall()
        return [Event(*r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def flush(self) -> None:
        with self._lock:
            self._time_held()
            if self.pending:
                self._write_pending()
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as e:
                log.warning("events: checkpoint failed (%s)", e)

    def close(self) -> None:
        """Write what is pending, then close. Raises AgegateError naming what could not be written."""
        with self._lock:
            self._time_held()
            if self.unclocked:  # the clock was never set: written with the times it gave, not lost
                log.warning("events: the box clock was never set; %d decision(s) written with its times (before "
                            "%s: the fleet report leaves them out)", len(self.unclocked), CLOCK_FLOOR_DATE)
                self.pending.extend(e for _, e in self.unclocked)
                self.unclocked.clear()
            if self.pending:
                self._write_pending()
            unwritten = len(self.pending) + self.lost
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            finally:
                self._db.close()
        if unwritten:
            raise AgegateError(f"{self.path}: {unwritten} decision(s) could not be written ({self.error}); "
                               f"free disk space under {self.path.parent}. Every earlier decision is in the database.")


def read_events(path: str | Path) -> list[Event]:
    """Every event in a box's database. A missing file, or one that is not an agegate events
    database, is an AgegateError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise AgegateError(f"{p}: no events database (written by `agegate edge run --events`)")
    # Read-write when allowed: the last connection to close then removes the WAL side files, which a
    # read-only connection cannot (the demo once left events.sqlite-wal and -shm behind). Only reads run.
    mode = "rw" if os.access(p, os.W_OK) and os.access(p.parent, os.W_OK) else "ro"
    try:
        db = sqlite3.connect(f"file:{p}?mode={mode}", uri=True)
        try:
            have = {row[1] for row in db.execute("PRAGMA table_info(events)")}
            cols = [f if f in have else "NULL" for f in EVENT_FIELDS]  # an older box's database: no reason yet
            rows = db.execute(f"SELECT {', '.join(cols)} FROM events ORDER BY ts, id").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise AgegateError(f"{p}: not an agegate events database ({e}); give the file `agegate edge run` writes "
                           f"(events.path in box.toml)") from e
    return [Event(*r) for r in rows]
