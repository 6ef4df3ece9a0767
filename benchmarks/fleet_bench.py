"""Fleet scale, measured: events of many boxes over many days, exported and reported on this machine.

The generator draws a realistic chain: stores of 2-6 tills, each till's buyers per hour following a
grocery day (closed at night, a lunch bump, an evening peak, busier weekends), an age mix per store,
ID checks for buyers under 25 and a small `uncertain` share, a few boxes whose `uncertain` share
jumps in the last week and a few whose camera sees buyers turned (the cameras the report must find). It
writes the export tree directly (one file per box and day, as a daily `edge export` leaves it): writing 20
million rows through SQLite first would time SQLite, not the export. The export itself is timed on one busy box's SQLite database, and
the report (`fleet.build_report`) over the whole tree, each in a fresh process for its peak RSS.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from agegate.edge.bands import BAND_LABELS
from agegate.edge.fleet import RECENT_DAYS

from .environment import environment, run_fresh, vm_mb

#: Mean buyers per till per hour over a day, 0h..23h (closed 23-6).
HOURLY = np.array([0, 0, 0, 0, 0, 0, 0, 4, 9, 11, 12, 14, 18, 16, 12, 11, 13, 17, 19, 16, 10, 6, 3, 0], float)
WEEKDAY = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.3, 0.8])  # Mon..Sun
MANIFEST = "_generated.json"
#: How far buyers are turned (|FaceBox.turn|) at a well placed camera: half-normal with this scale, which puts about
#: 10 % past the set-up line of 0.2 (11 % of the data sets' photos are: README, "Turned faces"); a camera beside where
#: buyers look adds TURNED_CAMERA to every buyer's turn.
TURN_SCALE = 0.12
TURNED_CAMERA = 0.25
BAND_AGE = {"0-12": 9, "13-17": 16, "18-24": 21, "25-34": 30, "35-44": 40, "45-54": 50, "55-64": 60, "65+": 72}


def generate_tree(out: Path, boxes: int, days: int, seed: int = 0, end: str | None = None,
                  rows_per_box_day: float = 222.0, progress=None) -> dict:
    """Write boxes x days files; returns {rows, files, jumped boxes, turned boxes}. `end`: the last day, by default
    2026-11-24, or later when that many days would begin before CLOCK_FLOOR_DATE (the report leaves such days out as a box
    clock not set)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agegate.edge.contracts import CLOCK_FLOOR_DATE
    from agegate.edge.export import arrow_schema

    if end is None:
        earliest_end = datetime.fromisoformat(CLOCK_FLOOR_DATE) + timedelta(days=days - 1)
        end = max("2026-11-24", earliest_end.date().isoformat())

    rng = np.random.default_rng(seed)
    schema = arrow_schema()
    scale = rows_per_box_day / HOURLY.sum()
    last = datetime.fromisoformat(end).replace(tzinfo=timezone.utc)
    # Jumps in the last RECENT_DAYS, from a lower share before (none when there are no days before).
    jumped = set()
    if days > RECENT_DAYS:
        jumped = set(rng.choice(boxes, size=max(1, boxes // 200), replace=False).tolist())
    # Turns from a generator of their own, so a seed's other figures are as before the column was added.
    turn_rng = np.random.default_rng([seed, 1])
    turned = set(turn_rng.choice(sorted(set(range(boxes)) - jumped), size=max(1, boxes // 200), replace=False).tolist())
    rows = files = 0
    event_id = 0
    for b in range(boxes):
        store = b // 4
        box_id = f"s{store:04d}-t{b % 4 + 1}"
        mix = rng.dirichlet(np.array([1, 2, 6, 10, 9, 8, 6, 5], float) * 4)  # adults dominate
        base_uncertain = rng.uniform(0.01, 0.05)
        for d in range(days):
            day = last - timedelta(days=days - 1 - d)
            lam = HOURLY * scale * WEEKDAY[day.weekday()] * rng.uniform(0.8, 1.2)
            counts = rng.poisson(lam)
            n = int(counts.sum())
            if n == 0:
                continue
            hours = np.repeat(np.arange(24), counts)
            ts = day.timestamp() + hours * 3600 + np.sort(rng.uniform(0, 3600, n))
            band_idx = rng.choice(len(BAND_LABELS), n, p=mix)
            bands = np.array(BAND_LABELS)[band_idx]
            ages = np.array([BAND_AGE[x] for x in bands], float) + rng.normal(0, 3, n)
            unc = base_uncertain + (0.25 if b in jumped and d >= days - RECENT_DAYS else 0.0)
            r = rng.random(n)
            decision = np.where(r < unc, "uncertain", np.where(ages < 25, "id_check", "ok"))
            risk = np.clip(1 / (1 + np.exp((ages - 25) / 3)), 0, 1)
            turn = np.abs(turn_rng.normal(0, TURN_SCALE, n)) + (TURNED_CAMERA if b in turned else 0.0)
            ids = np.arange(event_id + 1, event_id + n + 1)
            event_id += n
            table = pa.table({
                "event_id": ids, "ts": (ts * 1000).astype(np.int64), "store_id": [f"s{store:04d}"] * n,
                "till_id": [str(b % 4 + 1)] * n, "track_id": ids, "age": ages.astype(np.float32), "band": bands,
                "frames": rng.integers(10, 40, n).astype(np.int32), "decision": decision,
                "reason": np.where(decision == "uncertain", "too_few_frames", None),
                "p_under_25": risk.astype(np.float32), "latency_ms": rng.uniform(2, 6, n).astype(np.float32),
                "model": ["default-int8.tflite:3f9a2c01d4e5"] * n, "turn": turn.round(2).astype(np.float32)},
                schema=schema)
            folder = out / f"box_id={box_id}" / f"date={day.date().isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / f"part-{ids[0]:012d}-{ids[-1]:012d}.parquet", compression="zstd")
            rows += n
            files += 1
        if progress:
            progress(1)
    info = {"rows": rows, "files": files, "boxes": boxes, "days": days, "seed": seed, "end": end,
            "jumped_boxes": sorted(f"s{b // 4:04d}-t{b % 4 + 1}" for b in jumped),
            "turned_boxes": sorted(f"s{b // 4:04d}-t{b % 4 + 1}" for b in turned)}
    (out / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")  # outside the partitions: not read as data
    return info


def _export_child(db: str, out: str) -> None:
    from agegate.edge.export import export_events

    t0 = time.perf_counter()
    r = export_events(db, out)
    print(json.dumps({"rows": r.rows, "files": len(r.files), "seconds": time.perf_counter() - t0,
                      "peak_rss_mb": vm_mb("VmHWM")}))


def _report_child(tree: str) -> None:
    from agegate.edge.fleet import build_report

    t0 = time.perf_counter()
    rep = build_report([tree])
    print(json.dumps({"rows": rep.rows, "boxes": rep.boxes, "days": rep.days, "seconds": time.perf_counter() - t0,
                      "jumps_found": [j["box_id"] for j in rep.uncertain_jumps],
                      "turned_found": [t["box_id"] for t in rep.turned_boxes], "peak_rss_mb": vm_mb("VmHWM")}))


def _child(kind: str, *args: str) -> dict:
    try:
        return run_fresh(f"from agegate.benchmarks.fleet_bench import _{kind}_child as f; f(*{list(args)!r})")
    except RuntimeError as e:
        raise RuntimeError(f"{kind} benchmark failed: {e}") from e


def make_box_db(path: Path, rows: int, seed: int = 1) -> None:
    """One busy box's events database, written through the box's own EventStore schema."""
    import sqlite3

    from agegate.edge.events import EVENT_FIELDS, SCHEMA, migrate

    rng = np.random.default_rng(seed)
    db = sqlite3.connect(str(path))
    db.executescript(SCHEMA)
    migrate(db)
    t0 = datetime(2026, 8, 27, tzinfo=timezone.utc).timestamp()
    ts = t0 + np.sort(rng.uniform(0, 90 * 86400, rows))
    bands = np.array(BAND_LABELS)[rng.integers(0, len(BAND_LABELS), rows)]
    sql = f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) VALUES ({', '.join('?' * len(EVENT_FIELDS))})"
    db.executemany(sql, ((float(t), "box-bench", i, 30.0, str(b), 20, "ok", 3.0, None, 0.1, "m:abc", "s0001", "1", 0.05)
                         for i, (t, b) in enumerate(zip(ts, bands))))
    db.commit()
    db.close()


def bench_fleet(work: Path, boxes: int = 1000, days: int = 90, export_rows: int = 1_000_000, progress=None,
                reuse: bool = False) -> dict:
    """Generate (or, with `reuse`, take the tree a previous run left in `work` for the same boxes and
    days), then time the export and the report."""
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "tree"
    t0 = time.perf_counter()
    old = json.loads((tree / MANIFEST).read_text()) if reuse and (tree / MANIFEST).exists() else None
    if old and (old["boxes"], old["days"]) == (boxes, days):
        gen = old
    else:
        if tree.exists():
            import shutil

            shutil.rmtree(tree)
        gen = generate_tree(tree, boxes, days, progress=progress)
    gen_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in tree.rglob("*.parquet"))
    db = work / "box.sqlite"
    for stale in (db, db.with_name(db.name + ".export.json")):
        stale.unlink(missing_ok=True)
    if (work / "export").exists():
        import shutil

        shutil.rmtree(work / "export")
    make_box_db(db, export_rows)
    exp = _child("export", str(db), str(work / "export"))
    rep = _child("report", str(tree))
    return {
        "kind": "fleet", "boxes": boxes, "days": days, "rows": gen["rows"], "files": gen["files"],
        "tree_mb": round(size / 2**20, 1), "generate_seconds": None if gen is old else round(gen_s, 1),
        "export": {"rows": exp["rows"], "files": exp["files"], "seconds": round(exp["seconds"], 2),
                   "rows_per_s": round(exp["rows"] / exp["seconds"]), "peak_rss_mb": round(exp["peak_rss_mb"])},
        "report": {"rows": rep["rows"], "seconds": round(rep["seconds"], 2),
                   "rows_per_s": round(rep["rows"] / rep["seconds"]), "peak_rss_mb": round(rep["peak_rss_mb"]),
                   "jumped_boxes_planted": gen["jumped_boxes"], "jumped_boxes_found": rep["jumps_found"],
                   "turned_boxes_planted": gen.get("turned_boxes"), "turned_boxes_found": rep["turned_found"]},
        "environment": environment(),
    }
