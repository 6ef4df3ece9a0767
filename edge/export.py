"""`agegate edge export`: a box's events to Parquet, for the chain's fleet reports.

Layout (Hive partitions, read as they are by DuckDB, Spark, Trino and BigQuery):

    OUT/box_id=<box>/date=<YYYY-MM-DD>/part-<first id>-<last id>.parquet

`date` is the UTC day of the decision. Each file holds the rows of one box and day whose event ids
(SQLite's autoincrement: never reused, even after the retention purge) lie in the range in its name.

Incremental and crash-safe: a watermark file beside the database (`<db>.export.json`) holds the
last exported id. A run reads the rows above it, writes each file to a temporary name and renames it,
and only then moves the watermark. A run killed in the middle leaves files above the watermark: the
next run deletes those first (their id range says they were never committed) and writes them again,
so nothing is lost and nothing is exported twice. One run per database at a time (`<db>.export.lock`): a
second would take the first's new files for a killed run's. Sync the tree to the chain after the run ends.

Only event rows leave the box: no image, no crop, no embedding exists in the database to begin with.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import AgegateError, UsageError
from .events import EVENT_FIELDS
from .locks import exclusive
from .results import JsonResult

#: Rows per read from SQLite: bounds memory on a box that has not exported for months.
CHUNK_ROWS = 200_000
PART_RE = re.compile(r"part-(\d{12})-(\d{12})\.parquet$")
#: Parquet columns besides the Hive partition keys (box_id and date live in the path, not in the file).
COLUMNS = ("event_id", "ts", "store_id", "till_id", "track_id", "age", "band", "frames", "decision", "reason",
           "p_under_25", "latency_ms", "model", "turn")


@dataclass
class ExportResult(JsonResult):
    database: str
    out: str
    rows: int
    files: list[str] = field(default_factory=list)
    watermark_before: int = 0
    watermark_after: int = 0
    removed_uncommitted: int = 0  # files a killed run had left above the watermark
    # Where the rows up to the watermark went, when that was another tree: this one gets only later rows.
    earlier_out: str | None = None


def watermark_path(db: Path) -> Path:
    return db.with_name(db.name + ".export.json")


@dataclass(frozen=True)
class Watermark:
    """The last row exported, the tree it went to and when (None before the first export, or unrecorded)."""
    last_id: int = 0
    out: Path | None = None
    updated: float | None = None  # seconds since the epoch


def read_watermark(db: Path) -> Watermark:
    p = watermark_path(db)
    if not p.exists():
        return Watermark()
    try:
        saved = json.loads(p.read_text())
        updated = datetime.fromisoformat(saved["updated"]).timestamp() if saved.get("updated") else None
        return Watermark(int(saved["last_id"]), Path(saved["out"]) if saved.get("out") else None, updated)
    except (ValueError, KeyError, TypeError) as e:
        raise AgegateError(f"{p}: unreadable export watermark ({e}); delete it to export everything again "
                           f"(files already exported would then be written twice: clear --out as well)") from e


def write_watermark(db: Path, last_id: int, out: Path) -> None:
    p = watermark_path(db)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"last_id": int(last_id), "out": str(out.resolve()),
                               "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
    os.replace(tmp, p)


def arrow_schema():
    """The export's Parquet schema (COLUMNS, typed); the fleet benchmark writes its trees with it too."""
    import pyarrow as pa

    return pa.schema([("event_id", pa.int64()), ("ts", pa.timestamp("ms", tz="UTC")), ("store_id", pa.string()),
                      ("till_id", pa.string()), ("track_id", pa.int64()), ("age", pa.float32()), ("band", pa.string()),
                      ("frames", pa.int32()), ("decision", pa.string()), ("reason", pa.string()),
                      ("p_under_25", pa.float32()), ("latency_ms", pa.float32()), ("model", pa.string()),
                      ("turn", pa.float32())])


def remove_uncommitted(out: Path, box_ids: set[str] | None, watermark: int) -> int:
    """Delete part files of these boxes whose ids lie above the watermark (a killed run's), and temp files."""
    n = 0
    if not out.is_dir():
        return 0
    for box_dir in out.glob("box_id=*"):
        if box_ids is not None and box_dir.name.removeprefix("box_id=") not in box_ids:
            continue
        for f in box_dir.glob("date=*/*"):
            m = PART_RE.search(f.name)
            if f.name.endswith(".tmp") or (m and int(m[2]) > watermark):
                f.unlink()
                n += 1
    return n


def _open(db: Path) -> tuple[sqlite3.Connection, set[str]]:
    if not db.is_file():
        raise UsageError(f"{db}: no events database (written by `agegate edge run --events`)")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        have = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    except sqlite3.DatabaseError as e:
        raise AgegateError(f"{db}: not an agegate events database ({e})") from e
    if "ts" not in have:
        raise AgegateError(f"{db}: has no events table; give the file `agegate edge run` writes")
    return conn, have


def export_events(db: str | Path, out: str | Path, progress=None) -> ExportResult:
    """Export the rows above the watermark; see the module docstring for the guarantees. One export of a
    database at a time: a second, started while the first writes (a cron job over a slow run), would delete
    the first's new files as a killed run's and the first would then commit a watermark over rows it lost."""
    db, out = Path(db), Path(out)
    conn, have = _open(db)
    lock = db.with_name(db.name + ".export.lock")
    busy = AgegateError(f"{db}: another `agegate edge export` of it is running (it holds {lock}); wait for it to "
                        f"end and run this again")
    try:
        with exclusive(lock, busy):
            return _export(db, out, conn, have, progress)
    finally:
        conn.close()


def _export(db: Path, out: Path, conn: sqlite3.Connection, have: set[str], progress) -> ExportResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    watermark = read_watermark(db)
    mark = watermark.last_id
    try:
        numbered = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    except sqlite3.OperationalError:  # a table made without AUTOINCREMENT (not by the box): nothing to compare
        numbered = None
    if mark and numbered is not None and numbered[0] < mark:
        raise AgegateError(f"{db}: its rows end at id {numbered[0]}, below the export watermark ({mark}, "
                           f"{watermark_path(db)}): the database was replaced after the last export, and none of "
                           f"its rows would be exported. Start the box once (`agegate edge run`, or the service): "
                           f"it numbers them after the mark; then export again")
    boxes = {r[0] for r in conn.execute("SELECT DISTINCT box_id FROM events WHERE id > ?", (mark,))}
    result = ExportResult(str(db), str(out), 0, watermark_before=mark, watermark_after=mark)
    result.removed_uncommitted = remove_uncommitted(out, boxes, mark)
    if mark and watermark.out is not None and watermark.out.resolve() != out.resolve():
        result.earlier_out = str(watermark.out)
    fields_sql = ["id"] + [f if f in have else "NULL" for f in EVENT_FIELDS]
    names = ["event_id"] + list(EVENT_FIELDS)
    schema = arrow_schema()
    last = mark
    while True:
        rows = conn.execute(f"SELECT {', '.join(fields_sql)} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                            (last, CHUNK_ROWS)).fetchall()
        if not rows:
            break
        groups: dict[tuple[str, str], list[tuple]] = {}
        for r in rows:
            day = datetime.fromtimestamp(r[1], timezone.utc).strftime("%Y-%m-%d")
            groups.setdefault((r[2], day), []).append(r)
        for (box, day), part in sorted(groups.items()):
            cols = {n: [r[i] for r in part] for i, n in enumerate(names)}
            cols["ts"] = [int(t * 1000) for t in cols["ts"]]
            table = pa.table({c: cols[c] for c in COLUMNS}, schema=schema)
            folder = out / f"box_id={_safe(box)}" / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / f"part-{part[0][0]:012d}-{part[-1][0]:012d}.parquet"
            tmp = dest.with_name(dest.name + ".tmp")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, dest)
            result.files.append(str(dest))
        last = rows[-1][0]
        result.rows += len(rows)
        if progress:
            progress(len(rows))
    if last != mark:
        write_watermark(db, last, out)  # the commit: only now are the files above the old mark exported
    result.watermark_after = last
    return result


def _safe(box_id: str) -> str:
    """A box id as a path segment (Hive partition values cannot hold '/' or '=')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(box_id)) or "_"
