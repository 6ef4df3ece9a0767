"""Fleet analytics: `edge export` (incremental, crash-safe Parquet) and `fleet report` (DuckDB). No ../shared."""
from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agegate.edge.events import Event, EventStore
from agegate.edge.export import export_events, read_watermark

DAY = 86400.0


def fill(db: Path, n: int, start_id: int = 0, box: str = "s0001-t1", t0: float = 1.79e9, step: float = 97.0) -> None:
    store = EventStore(db, retention_days=36500)
    for i in range(n):
        k = start_id + i
        store.add(Event(t0 + k * step, box, k, 20.0 + k % 50, "25-34", 12,
                        ("ok", "id_check", "uncertain")[k % 3], 3.0, "too_few_frames: 2" if k % 3 == 2 else None,
                        0.2, "m.tflite:abc", "s0001", "1"))
    store.close()


def exported(out: Path) -> list[int]:
    import duckdb

    files = str(out / "box_id=*" / "date=*" / "*.parquet")
    return [r[0] for r in duckdb.sql(f"SELECT event_id FROM read_parquet('{files}', hive_partitioning = true) "
                                     f"ORDER BY 1").fetchall()]


def db_ids(db: Path) -> list[int]:
    import sqlite3

    return [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM events ORDER BY id")]


def test_export_twice_adds_nothing_and_new_rows_once(tmp_path):
    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    fill(db, 500)
    first = export_events(db, out)
    assert first.rows == 500 and exported(out) == db_ids(db)
    assert export_events(db, out).rows == 0  # a second run adds nothing
    fill(db, 300, start_id=500)
    assert export_events(db, out).rows == 300
    ids = exported(out)
    assert ids == db_ids(db) and len(ids) == len(set(ids)) == 800
    assert read_watermark(db).last_id == 800
    # Hive layout with the partition keys in the path; days are UTC dates of the decisions
    dates = {p.parent.name for p in out.rglob("*.parquet")}
    assert all(d.startswith("date=20") for d in dates) and len(dates) >= 2
    assert {p.parent.parent.name for p in out.rglob("*.parquet")} == {"box_id=s0001-t1"}


def test_export_rows_carry_store_till_and_no_image(tmp_path):
    import pyarrow.parquet as pq

    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    fill(db, 10)
    export_events(db, out)
    table = pq.read_table(next(out.rglob("*.parquet")))
    assert set(table.column("store_id").to_pylist()) == {"s0001"} and set(table.column("till_id").to_pylist()) == {"1"}
    assert not {"image", "crop", "embedding", "look"} & set(table.column_names)


def test_export_killed_at_a_failure_point_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    """Fail the k-th file rename (as a kill would stop it), for several k: the rerun completes exactly."""
    import agegate.edge.export as ex

    monkeypatch.setattr(ex, "CHUNK_ROWS", 97)  # many files per run, so failures land mid-run
    real_replace = ex.os.replace
    for k in (1, 3, 7):
        db, out = tmp_path / f"ev{k}.sqlite", tmp_path / f"out{k}"
        fill(db, 400)
        export_events(db, out)
        fill(db, 600, start_id=400)
        calls = {"n": 0}

        def failing(src, dst, k=k):
            calls["n"] += 1
            if calls["n"] == k:
                raise KeyboardInterrupt("killed")
            return real_replace(src, dst)

        monkeypatch.setattr(ex.os, "replace", failing)
        with pytest.raises(KeyboardInterrupt):
            export_events(db, out)
        monkeypatch.setattr(ex.os, "replace", real_replace)
        assert read_watermark(db).last_id == 400  # nothing above the mark was committed
        again = export_events(db, out)
        ids = exported(out)
        assert ids == db_ids(db), f"k={k}: rows lost or doubled"
        assert again.removed_uncommitted >= 1 or k == 1


def test_export_killed_by_sigkill_at_a_random_moment(tmp_path):
    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    fill(db, 6000, step=11.0)
    code = ("import agegate.edge.export as ex, sys; ex.CHUNK_ROWS = 50; "
            f"ex.export_events({str(db)!r}, {str(out)!r})")
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    export_events(db, out)
    assert exported(out) == db_ids(db)


def test_export_cli_json_and_bad_database(tmp_path, cli):
    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    fill(db, 20)
    r = cli("edge", "export", "--events", db, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rows"] == 20
    r = cli("edge", "export", "--events", db, "--out", out)
    assert r.exit_code == 0 and "nothing new" in r.output
    (tmp_path / "junk.sqlite").write_text("not a database")
    r = cli("edge", "export", "--events", tmp_path / "junk.sqlite", "--out", out)
    assert r.exit_code != 0 and "junk.sqlite" in r.output


def test_export_to_another_tree_says_where_the_earlier_rows_went(tmp_path, cli):
    """The watermark is the database's, so a second tree gets only rows after it (a sync that moves files away
    relies on that). Pointing --out elsewhere once answered "nothing new" and no more: it now names the tree
    the earlier rows went to and how to export them all again."""
    db = tmp_path / "ev.sqlite"
    fill(db, 20)
    assert cli("edge", "export", "--events", db, "--out", tmp_path / "a").exit_code == 0
    r = cli("edge", "export", "--events", db, "--out", tmp_path / "b")
    assert r.exit_code == 0 and "nothing new" in r.output
    assert f"rows 1..20 were exported to {tmp_path / 'a'}" in r.output and "ev.sqlite.export.json" in r.output
    fill(db, 5, start_id=20)
    assert json.loads(cli("edge", "export", "--events", db, "--out", tmp_path / "b", "--json").output)["rows"] == 5
    r = cli("edge", "export", "--events", db, "--out", tmp_path / "b")
    assert "nothing new" in r.output and "were exported to" not in r.output  # the last rows went to b


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from agegate.benchmarks.fleet_bench import generate_tree

    root = tmp_path_factory.mktemp("fleet") / "tree"
    info = generate_tree(root, boxes=40, days=30, seed=3)
    return root, info


def test_fleet_report_finds_the_planted_camera_problem_and_counts_everything(tree):
    from agegate.edge.fleet import build_report

    root, info = tree
    rep = build_report([str(root)])
    assert rep.rows == info["rows"] and rep.boxes == 40 and rep.days == 30 and rep.stores == 10
    assert sum(r["buyers"] for r in rep.by_store_band) == rep.rows == sum(r["buyers"] for r in rep.by_hour)
    assert sum(r["buyers"] for r in rep.by_weekday) == rep.rows
    assert [j["box_id"] for j in rep.uncertain_jumps] == info["jumped_boxes"]
    assert rep.models[0]["boxes"] == 40 and rep.missing_box_days == []
    # the camera beside where buyers look: most of its buyers turned past the set-up line, and no other box
    assert [t["box_id"] for t in rep.turned_boxes] == info["turned_boxes"] and len(info["turned_boxes"]) == 1
    shares = {r["box_id"]: r["turned_share"] for r in rep.per_box}
    assert shares[info["turned_boxes"][0]] > 0.5
    assert max(v for k, v in shares.items() if k not in info["turned_boxes"]) < 0.2


def test_a_report_of_a_few_days_looks_for_no_jumps_and_says_so(tree, tmp_path, cli):
    """A jump compares the last 7 days with the days before: over the last 5 days of the tree the planted
    camera has no days before, so it is not listed (once it was, with no share before, and the text output
    failed on it), and the report says why it looked for none."""
    import datetime as dt

    from agegate.edge.fleet import build_report

    root, info = tree
    first = (dt.date.fromisoformat(info["end"]) - dt.timedelta(days=4)).isoformat()
    assert build_report([str(root)], date_from=first, date_to=info["end"]).uncertain_jumps == []
    r = cli("fleet", "report", root, "--from", first, "--to", info["end"], "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert "not looked for" in r.output and "covers 5" in r.output and "uncertain jumped" not in r.output
    assert "not looked for: this report covers 5 days" in (tmp_path / "rep" / "index.html").read_text()
    assert info["jumped_boxes"] and "not looked for" not in cli("fleet", "report", root).output


def test_a_range_running_past_the_data_still_finds_the_jump(tree, cli):
    """`--to` a week past the last export (this month's report, asked mid-month) put the 7 recent days mostly after
    the data: one day of the planted camera's jump against the jumped days before it, and it was no longer listed."""
    import datetime as dt

    from agegate.edge.fleet import build_report

    root, info = tree
    end = dt.date.fromisoformat(info["end"])
    later = (end + dt.timedelta(days=6)).isoformat()
    rep = build_report([str(root)], date_to=later)
    assert [j["box_id"] for j in rep.uncertain_jumps] == info["jumped_boxes"]
    assert (rep.recent_from, rep.recent_to) == ((end - dt.timedelta(days=6)).isoformat(), info["end"])
    r = cli("fleet", "report", root, "--to", later)
    assert f"uncertain jumped: {info['jumped_boxes'][0]}" in r.output and f"to {info['end']} against" in r.output


def test_fleet_report_date_range_names_missing_box_days(tree, tmp_path):
    import shutil

    from agegate.edge.fleet import build_report

    root, _ = tree
    copy = tmp_path / "tree"
    shutil.copytree(root, copy)
    day = sorted(p.name for p in (copy / "box_id=s0000-t1").iterdir())[5]
    shutil.rmtree(copy / "box_id=s0000-t1" / day)  # one box-day never arrived
    first = sorted(p.name for p in (copy / "box_id=s0000-t1").iterdir())[0].removeprefix("date=")
    rep = build_report([str(copy)], date_from=first, date_to=day.removeprefix("date="))
    assert rep.days == 6
    assert rep.missing_box_days == [{"box_id": "s0000-t1", "date": day.removeprefix("date=")}]


def test_fleet_report_cli_writes_html_csv_json(tree, tmp_path, cli):
    root, info = tree
    r = cli("fleet", "report", root, "--out", tmp_path / "rep", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rows"] == info["rows"]
    for name in ("index.html", "per_box.csv", "by_hour.csv", "report.json", "buyers_by_hour.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    turned = info["turned_boxes"][0]
    assert turned in (tmp_path / "rep" / "turned_boxes.csv").read_text()
    assert turned in (tmp_path / "rep" / "index.html").read_text()
    r = cli("fleet", "report", root)
    assert r.exit_code == 0 and f"{info['rows']:,} buyers, 40 boxes" in r.output
    assert f"buyers seen turned: {turned} " in r.output and "check it with /setup" in r.output


def test_fleet_report_names_a_damaged_file_a_bad_time_zone_and_a_backward_range(tree, tmp_path, cli):
    """Each once ended in a DuckDB traceback (or, for the range, an empty report that blamed the data)."""
    import shutil

    root, info = tree
    copy = tmp_path / "tree"
    shutil.copytree(root, copy)
    part = next(copy.rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:100])  # cut short in transfer
    r = cli("fleet", "report", copy)
    assert r.exit_code == 1 and "Traceback" not in r.output and part.name in r.output and "synced" in r.output
    r = cli("fleet", "report", root, "--tz", "Mars/Olympus")
    assert r.exit_code == 2 and "not a time zone" in r.output
    r = cli("fleet", "report", root, "--from", info["end"], "--to", "2026-01-01")
    assert r.exit_code == 2 and "is after --to" in r.output


def test_fleet_report_refuses_a_folder_that_is_not_an_export(tmp_path, cli):
    r = cli("fleet", "report", tmp_path)
    assert r.exit_code == 2 and "agegate edge export" in r.output


def test_fleet_report_hours_follow_the_time_zone(tree):
    from agegate.edge.fleet import build_report

    root, _ = tree
    utc = {r["hour"]: r["buyers"] for r in build_report([str(root)]).by_hour}
    tokyo = {r["hour"]: r["buyers"] for r in build_report([str(root)], tz="Asia/Tokyo").by_hour}
    assert tokyo == {(h + 9) % 24: n for h, n in utc.items()}


def test_bench_fleet_small_run_reports_rates_and_finds_the_planted_problem(tmp_path, cli):
    r = cli("bench", "fleet", "--boxes", 8, "--days", 10, "--export-rows", 2000, "--work", tmp_path / "w",
            "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["files"] == 80 and d["export"]["rows"] == 2000 and d["report"]["rows"] == d["rows"]
    assert d["report"]["jumped_boxes_found"] == d["report"]["jumped_boxes_planted"]
    assert d["report"]["turned_boxes_found"] == d["report"]["turned_boxes_planted"] != []
    assert d["environment"]["cores"] and "isa" in d["environment"]
    again = json.loads(cli("bench", "fleet", "--boxes", 8, "--days", 10, "--export-rows", 2000, "--work",
                           tmp_path / "w", "--reuse", "--json").output)
    assert again["generate_seconds"] is None and again["rows"] == d["rows"]  # the tree was reused


def test_a_database_replaced_after_an_export_is_exported_whole(tmp_path):
    """events.sqlite deleted (to free space) or set aside (damaged) after an export: the new one counted from 1,
    and the export, which takes the rows above its watermark, skipped every new row up to the mark, unsaid.
    A new database now numbers after the mark; one that an older agegate numbered from 1 is refused by export
    with what to do, and renumbered by the box when it next opens it."""
    import sqlite3

    from agegate.edge.errors import AgegateError

    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    fill(db, 300)
    assert export_events(db, out).rows == 300
    db.unlink()
    fill(db, 50, start_id=300)  # a new database, its ids after the mark
    assert db_ids(db)[0] == 301 and export_events(db, out).rows == 50 and len(exported(out)) == 350

    db.unlink()  # as an older agegate wrote it: ids from 1, below the mark (350)
    old = sqlite3.connect(db)
    old.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, box_id TEXT "
                      "NOT NULL, track_id INTEGER NOT NULL, age REAL, band TEXT, frames INTEGER NOT NULL, decision "
                      "TEXT NOT NULL, latency_ms REAL)")
    # 3 rows restored from a backup (decided before the last export, so exported then), 20 decided since
    rows = [(1.79e9 + k * 97.0, k) for k in range(3)] + [(time.time() + 5 + k, 100 + k) for k in range(20)]
    old.executemany("INSERT INTO events (ts, box_id, track_id, frames, decision) VALUES (?, 's0001-t1', ?, 9, 'ok')",
                    rows)
    old.commit()
    old.close()
    with pytest.raises(AgegateError, match="below the export watermark"):
        export_events(db, out)
    EventStore(db, retention_days=36500).close()  # the box opens it
    assert db_ids(db) == [1, 2, 3] + list(range(354, 374))
    assert export_events(db, out).rows == 20 and len(exported(out)) == 370  # none of the 3 exported twice


def test_one_export_of_a_database_at_a_time(tmp_path):
    """A second export started while the first writes (cron over a slow run) deleted the first's new files as a
    killed run's leftovers, and the first then committed a watermark over rows the tree no longer held. The
    second is now refused while the first holds the lock, and nothing changes."""
    import fcntl

    from agegate.edge.errors import AgegateError

    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    fill(db, 100)
    with open(tmp_path / "ev.sqlite.export.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(AgegateError, match="another `agegate edge export` of it is running"):
            export_events(db, out)
        assert not out.exists() and read_watermark(db).last_id == 0
    assert export_events(db, out).rows == 100  # released: the export runs


def test_rows_of_a_box_whose_clock_was_not_set_are_left_out_and_named(tree, tmp_path, cli):
    """A box that wrote 1970 times (no battery clock, before NTP) once stretched the report to 20,785 days with
    as many box-days 'missing'. Rows dated before any agegate box ran are left out of every table and named
    with their box; the rest of the report is as without them."""
    import shutil

    from agegate.edge.fleet import build_report

    root, info = tree
    copy = tmp_path / "tree"
    shutil.copytree(root, copy)
    db = tmp_path / "ev.sqlite"
    fill(db, 30, box="s9999-t1", t0=2 * 86400.0, step=60.0)  # 1970-01-03, as the box's clock said
    for e in db.parent.glob("ev.sqlite.export.json"):
        e.unlink()
    assert export_events(db, copy).rows == 30
    clean, rep = build_report([str(root)]), build_report([str(copy)])
    assert rep.unclocked == [{"box_id": "s9999-t1", "dated": "before 2026-01-01", "buyers": 30}]
    assert (rep.rows, rep.days, rep.date_from, rep.missing_box_days) == (clean.rows, clean.days, clean.date_from,
                                                                         clean.missing_box_days)
    r = cli("fleet", "report", copy, "--out", tmp_path / "rep")
    assert r.exit_code == 0 and "left out: 30 buyers dated before 2026-01-01" in r.output and "s9999-t1" in r.output
    assert 'id="unclocked"' in (tmp_path / "rep" / "index.html").read_text()
    # a clock set ahead (late 2035) would stretch the report over ten years of 'missing' box-days the same way
    ahead = tmp_path / "ahead.sqlite"
    fill(ahead, 20, box="s9998-t1", t0=2.08e9, step=60.0)
    assert export_events(ahead, copy).rows == 20
    rep = build_report([str(copy)])
    assert {r["box_id"]: (r["dated"], r["buyers"]) for r in rep.unclocked} == {
        "s9999-t1": ("before 2026-01-01", 30), "s9998-t1": (f"after {rep.latest}", 20)}
    assert (rep.rows, rep.days, rep.date_to, rep.missing_box_days) == (clean.rows, clean.days, clean.date_to,
                                                                       clean.missing_box_days)
    r = cli("fleet", "report", copy)
    assert r.exit_code == 0 and f"or after {rep.latest} (a box clock set ahead)" in r.output and "s9998-t1" in r.output
    # the day the report is made decides what is ahead: made in 2036, those rows are the report's
    assert build_report([str(copy)], today=dt.date(2036, 1, 2)).rows == clean.rows + 20


def test_retention_says_how_many_rows_it_deletes_before_any_export_took_them(tmp_path, caplog):
    """Retention deletes old rows, exported or not; on a box that exports, rows deleted unexported are lost to
    the chain's report, which once happened unsaid when the export had stopped for longer than the retention."""
    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    old = time.time() - 100 * DAY
    fill(db, 10, t0=old, step=60.0)
    assert export_events(db, out).rows == 10
    fill(db, 5, start_id=10, t0=old, step=60.0)  # 5 more of 100 days ago, never exported
    store = EventStore(db, retention_days=36500)
    with caplog.at_level("WARNING", logger="agegate.edge"):
        assert store.purge(time.time() + 0) == 0  # nothing is past 100 years
        store.retention_days = 90
        assert store.purge() == 15
    store.close()
    assert "5 decision(s) past the 90-day retention were never exported" in caplog.text


def test_a_box_in_two_trees_counts_once_and_one_tree_given_twice_is_refused(tree, tmp_path, cli):
    """A tree and its copy (or one tree named twice) doubled every figure of the report, unsaid. The same
    folder twice is refused; a box whose files lie in two trees counts each row once, and the report says how
    many it found twice."""
    import shutil

    from agegate.edge.fleet import build_report

    root, _ = tree
    once = build_report([str(root)])
    r = cli("fleet", "report", root, root / ".." / root.name)
    assert r.exit_code == 2 and "the same export tree" in r.output
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.rmtree(next(copy.glob("box_id=*")))  # a partial copy: some boxes in one tree only
    both = build_report([str(root), str(copy)])
    assert (both.rows, both.boxes, both.by_store_band, both.missing_box_days) == (
        once.rows, once.boxes, once.by_store_band, once.missing_box_days)
    assert 0 < both.copies < once.rows and once.copies == 0
    r = cli("fleet", "report", root, copy)
    assert r.exit_code == 0 and f"counted once: {both.copies:,} rows" in r.output


def test_files_of_an_older_export_without_the_newer_columns_are_read(tree, tmp_path):
    """A fleet mid-rollout holds files exported by older agegates, without store_id, till_id, model and
    p_under_25: one such file once failed the whole report ('schema mismatch', blamed on a damaged file)."""
    import shutil

    import pyarrow.parquet as pq

    from agegate.edge.fleet import build_report

    root, _ = tree
    copy = tmp_path / "tree"
    shutil.copytree(root, copy)
    part = next(copy.rglob("*.parquet"))
    older = pq.read_table(part).drop_columns(["store_id", "till_id", "model", "p_under_25"])
    old_box = copy / "box_id=s9998-t1" / part.parent.name
    old_box.mkdir(parents=True)
    pq.write_table(older, old_box / part.name)
    rep = build_report([str(copy)])
    assert rep.rows == build_report([str(root)]).rows + older.num_rows
    assert {"model": "unknown", "boxes": 1} == {k: v for k, v in rep.models[-1].items() if k in ("model", "boxes")}
    assert any(r["store_id"] == "?" for r in rep.by_store_band)


def test_a_tree_whose_every_file_lacks_the_newer_columns_is_read(tmp_path):
    """Files exported before a column was added (store, till, model, P(under 25), turn) read as NULL when another
    file has the column (union_by_name); a tree where no file has one, every box still on an older agegate, once
    failed the report as a damaged file: a column the query names did not exist at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agegate.edge.fleet import build_report

    day = tmp_path / "tree" / "box_id=s0001-t1" / "date=2026-11-20"
    day.mkdir(parents=True)
    ts = pa.array([1_795_651_200_000 + k * 60_000 for k in range(3)], pa.timestamp("ms", tz="UTC"))
    pq.write_table(pa.table({"event_id": [1, 2, 3], "ts": ts, "track_id": [1, 2, 3], "age": [30.0, 40.0, 20.0],
                             "band": ["25-34", "35-44", "18-24"], "frames": [12, 12, 12],
                             "decision": ["ok", "ok", "id_check"], "reason": [None, None, None],
                             "latency_ms": [3.0, 3.0, 3.0]}), day / "part-000000000001-000000000003.parquet")
    rep = build_report([str(tmp_path / "tree")], today=dt.date(2026, 11, 21))
    assert rep.rows == 3 and rep.per_box[0]["store_id"] == "?" and rep.per_box[0]["turned_share"] is None
    assert rep.models == [{"model": "unknown", "boxes": 1, "buyers": 3, "first_seen": "2026-11-20",
                           "last_seen": "2026-11-20"}] and rep.turned_boxes == []


def test_buyers_with_no_age_band_are_counted_and_said(tmp_path, cli):
    """A buyer decided uncertain with no face good enough to age has no band: counted among the buyers, in no band's
    share, so the headline's shares summed under 100 % without a word; now it names them, and the page too."""
    db, out = tmp_path / "ev.sqlite", tmp_path / "out"
    store = EventStore(db, retention_days=36500)
    t0 = 1.79e9
    for k in range(40):
        aged = k % 4 != 0  # every fourth buyer: no age, no band
        store.add(Event(t0 + k * 97.0, "s0001-t1", k, 30.0 if aged else None, "25-34" if aged else None, 12,
                        "ok" if aged else "uncertain", 3.0, None if aged else "face_too_small: 0 good frame(s)",
                        None, "m.tflite:abc", "s0001", "1"))
    store.close()
    export_events(db, out)
    from agegate.edge.fleet import build_report

    rep = build_report([str(out)])
    assert (rep.rows, rep.unbanded) == (40, 10)
    r = cli("fleet", "report", out, "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert "25-34 75%" in r.output and "no band 25% (uncertain, no face to age)" in r.output
    assert "10 buyers (25.0%) have no age band" in (tmp_path / "rep" / "index.html").read_text()
