"""The box's event store: one row per buyer decision, in SQLite (WAL mode).

What is kept (DESIGN.md event row): ts, box_id, track_id, age, band, frames,
decision, latency_ms. Never an image, a crop or an embedding: biometric data stays
in memory on the box and is dropped with the track. Rows older than the retention
period are deleted on open and every hour.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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
    latency_ms REAL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
EVENT_FIELDS = ("ts", "box_id", "track_id", "age", "band", "frames", "decision", "latency_ms")


@dataclass(frozen=True)
class Event:
    ts: float
    box_id: str
    track_id: int
    age: float | None
    band: str | None
    frames: int
    decision: str
    latency_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


class EventStore:
    def __init__(self, path: str | Path, retention_days: float = 90.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._last_purge = 0.0
        self.purge()

    def add(self, e: Event) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) VALUES ({', '.join('?' * len(EVENT_FIELDS))})",
                tuple(getattr(e, f) for f in EVENT_FIELDS))
        if time.time() - self._last_purge > 3600:
            self.purge()

    def purge(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        self._last_purge = now
        if self.retention_days <= 0:
            return 0
        with self._lock:
            cur = self._db.execute("DELETE FROM events WHERE ts < ?", (now - self.retention_days * 86400,))
        return cur.rowcount

    def all(self) -> list[Event]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(EVENT_FIELDS)} FROM events ORDER BY ts, id").fetchall()
        return [Event(*r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def flush(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()


def read_events(path: str | Path) -> list[Event]:
    p = Path(path)
    if not p.exists():
        from .errors import AgegateError

        raise AgegateError(f"{p}: no events database (written by `agegate edge run --events`)")
    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT {', '.join(EVENT_FIELDS)} FROM events ORDER BY ts, id").fetchall()
    finally:
        db.close()
    return [Event(*r) for r in rows]
