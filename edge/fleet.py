"""`agegate fleet report`: the chain's view, from the Parquet trees the boxes export (export.py).

DuckDB (embedded, no server) reads one or many export trees as one table with the Hive partition
keys `box_id` and `date` from the paths, prunes partitions outside --from/--to, and aggregates:
buyers by age band per store, per hour of day and per weekday; the share of ID checks and of
`uncertain` per box and per day; boxes whose `uncertain` share jumped (a camera that moved, a lamp
that died); the models each box ran; and which box-days are missing. Pure SQL over the files, so
the same queries run on Spark or a warehouse pointed at the same tree.

Runs on the chain's machine, not on the box: duckdb is imported inside functions (`pip install
agegate[fleet]`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from .bands import BAND_LABELS
from .contracts import CLOCK_FLOOR_DATE
from .errors import AgegateError, UsageError
from .results import JsonResult
from .setup_view import MAX_SETUP_TURN

#: A box is listed as "uncertain jumped" when its share over the last RECENT_DAYS is at least
#: JUMP_POINTS above its share before, at least twice it, on at least JUMP_MIN_BUYERS buyers on each
#: side: a box with no days before (new, or a report of RECENT_DAYS or fewer) has nothing to jump from.
RECENT_DAYS = 7
JUMP_POINTS = 0.10
JUMP_MIN_BUYERS = 50
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: A box is listed as "buyers seen turned" when more than this share of its buyers (of at least JUMP_MIN_BUYERS
#: with a turn recorded) were turned past the set-up line (setup_view.MAX_SETUP_TURN) on most of their frames:
#: then most buyers there meet the set-up view's "face turned away", a camera beside where buyers look. Not a
#: measured line: a majority, by its definition. On the data sets' photos 11 % were turned past it
#: (README, "Turned faces"), and buyers seen turned were asked for ID 30 % or more often. A far camera does not read
#: its buyers as turned: val buyers replayed at 60-250 px whose photos face the camera read past the line on 4-6 %
#: at every size (benchmarks/results/turned/turn-by-face-px-val.txt).
TURNED_SHARE = 0.5


@dataclass
class FleetReport(JsonResult):
    sources: list[str]
    date_from: str
    date_to: str
    tz: str
    rows: int
    boxes: int
    stores: int
    days: int
    missing_box_days: list[dict] = field(default_factory=list)  # {box_id, date}
    by_store_band: list[dict] = field(default_factory=list)
    by_hour: list[dict] = field(default_factory=list)
    by_weekday: list[dict] = field(default_factory=list)
    per_box: list[dict] = field(default_factory=list)  # buyers, id_check_share, uncertain_share, last_seen
    box_days: list[dict] = field(default_factory=list)  # box_id, date, buyers, uncertain_share, id_check_share
    uncertain_jumps: list[dict] = field(default_factory=list)
    turned_boxes: list[dict] = field(default_factory=list)  # box_id, buyers_with_turn, turned_share
    models: list[dict] = field(default_factory=list)
    # Rows dated before CLOCK_FLOOR_DATE (a box clock not set) or after `latest` (a clock set ahead), left out of
    # every table: box_id, dated ('before ...' / 'after ...'), buyers.
    unclocked: list[dict] = field(default_factory=list)
    latest: str = ""  # the last date a row may carry: the day after the report was made (time zones ahead)
    copies: int = 0  # rows found in more than one tree (the same box's files twice), counted once
    # The days a jump is looked for in: the last RECENT_DAYS up to the last day with events (a --to past the data
    # once left one day in the window, and a camera that had jumped a week before was no longer seen to); "" when
    # no day with events lies before them (nothing to jump from).
    recent_from: str = ""
    recent_to: str = ""
    event_days: int = 0  # from the first to the last day with events in the range, both counted
    seconds: float = 0.0

    #: Tables written as CSV beside the HTML.
    TABLES = ("by_store_band", "by_hour", "by_weekday", "per_box", "box_days", "uncertain_jumps", "turned_boxes",
              "models", "missing_box_days", "unclocked")

    @property
    def unclocked_buyers(self) -> int:
        """Buyers left out as dated before CLOCK_FLOOR_DATE or after `latest`."""
        return sum(r["buyers"] for r in self.unclocked)

    @property
    def unclocked_words(self) -> str:
        """What the left-out rows are, for the CLI and the HTML (`unclocked_words`)."""
        return unclocked_words(self.unclocked)

    @property
    def unbanded(self) -> int:
        """Buyers with no age band (decided uncertain with no face good enough to age): in every count, in no band."""
        return self.rows - sum(r[b] for r in self.by_store_band for b in BAND_LABELS)

    @property
    def jumps_looked_for(self) -> bool:
        """Whether the report has days with events before the last RECENT_DAYS to compare them with."""
        return bool(self.recent_from)


def unclocked_words(unclocked: list[dict]) -> str:
    """'12 buyers dated before 2026-01-01 (a box clock not set) or after 2026-12-07 (a box clock set ahead)' for
    rows left out by their date (FleetReport.unclocked)."""
    why = {"before": "a box clock not set", "after": "a box clock set ahead"}
    sides = sorted({r["dated"] for r in unclocked}, key=lambda d: d.split()[0] != "before")
    return (f"{sum(r['buyers'] for r in unclocked):,} buyers dated "
            + " or ".join(f"{d} ({why[d.split()[0]]})" for d in sides))


def _glob(d: str) -> str:
    p = Path(d)
    if not p.is_dir():
        raise UsageError(f"{d}: not a folder; give an export tree written by `agegate edge export --out`")
    if not any(p.glob("box_id=*/date=*/*.parquet")):
        raise UsageError(f"{d}: no box_id=.../date=.../*.parquet files; is it an `agegate edge export` tree?")
    return str(p / "box_id=*" / "date=*" / "*.parquet")


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [c[0] for c in cur.description]
    return [{n: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for n, v in zip(names, r)}
            for r in cur.fetchall()]


def build_report(dirs: list[str], date_from: str | None = None, date_to: str | None = None,
                 tz: str = "UTC", today: dt.date | None = None) -> FleetReport:
    """The report over the export trees `dirs`. `today`: the date the report is made (UTC): rows dated after the
    day after it come from a box clock set ahead and are left out like those before CLOCK_FLOOR_DATE; one box at
    2035 stretched the report over nine years of 'missing' box-days."""
    import time

    t0 = time.perf_counter()
    if date_from and date_to and date_from > date_to:
        raise UsageError(f"--from {date_from} is after --to {date_to}")
    globs, once = _trees(dirs)
    # union_by_name: a fleet mid-rollout exports from older agegates whose files lack the newer columns
    # (NEWER_COLUMNS): those read as NULL instead of failing the whole report.
    src = (f"read_parquet({globs!r}, hive_partitioning = true, union_by_name = true, "
           f"hive_types = {{'box_id': VARCHAR, 'date': DATE}})")
    # Days before any agegate box ran are a box clock not set, days after tomorrow one set ahead: left out
    # always, and named.
    latest = ((today or dt.datetime.now(dt.timezone.utc).date()) + dt.timedelta(days=1)).isoformat()
    con = _connect(tz)
    try:
        copies = _load_events(con, src, tz, once, [(">=", CLOCK_FLOOR_DATE), ("<=", latest), (">=", date_from),
                                                   ("<=", date_to)])
        unclocked = _left_out_by_date(con, src, latest, date_from, date_to)
        n = con.execute("SELECT count(*), count(DISTINCT box_id), count(DISTINCT store_id), min(date), max(date) "
                        "FROM ev").fetchone()
        if not n[0]:
            asked = f" between {date_from or '...'} and {date_to or '...'}" if date_from or date_to else ""
            raise UsageError(f"no events in {', '.join(dirs)}{asked}"
                             + (f" ({unclocked_words(unclocked)}, left out)" if unclocked else ""))
        lo, hi = (date_from or n[3].isoformat()), (date_to or n[4].isoformat())
        days = (dt.date.fromisoformat(hi) - dt.date.fromisoformat(lo)).days + 1
        rep = FleetReport(list(dirs), lo, hi, tz, int(n[0]), int(n[1]), int(n[2]), days, unclocked=unclocked,
                          latest=latest, copies=copies)
        end = min(dt.date.fromisoformat(hi), n[4])  # the last day with events
        rep.event_days = (end - n[3]).days + 1
        if end - dt.timedelta(days=RECENT_DAYS) >= n[3]:
            rep.recent_from = (end - dt.timedelta(days=RECENT_DAYS - 1)).isoformat()
            rep.recent_to = end.isoformat()
        _tables(con, rep)
    finally:
        con.close()
    rep.seconds = round(time.perf_counter() - t0, 3)
    return rep


def _trees(dirs: list[str]) -> tuple[list[str], str]:
    """Each tree's Parquet glob, and the clause that takes a row once when a box is found in more than one tree
    (a tree and its copy, a box moved between stores' trees): by (box_id, event_id, ts), which a copied row keeps
    and another row never shares ('' when no box is)."""
    seen: dict[Path, str] = {}
    for d in dirs:
        if (key := Path(d).resolve()) in seen:
            raise UsageError(f"{d}: the same export tree as {seen[key]}; give each tree once (its rows would count "
                             f"twice)")
        seen[key] = d
    globs = [_glob(d) for d in dirs]
    in_trees: dict[str, int] = {}
    for d in dirs:
        for box_dir in Path(d).glob("box_id=*"):
            in_trees[box_dir.name] = in_trees.get(box_dir.name, 0) + 1
    once = ("QUALIFY row_number() OVER (PARTITION BY box_id, event_id, ts) = 1"
            if any(n > 1 for n in in_trees.values()) else "")
    return globs, once


def _connect(tz: str):
    """A DuckDB connection in the report's time zone (hours and weekdays are the stores' local ones)."""
    try:
        import duckdb
    except ImportError as e:
        raise UsageError("agegate fleet needs DuckDB: pip install 'agegate[fleet]'") from e
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # the CLI has its own output; no bar in --json
    if tz != "UTC":
        try:
            con.execute("SET TimeZone = ?", [tz])
        except duckdb.Error as e:
            raise UsageError(f"--tz {tz!r}: not a time zone DuckDB knows ({str(e).splitlines()[0]}); use an "
                             f"IANA name such as Europe/London") from e
    return con


#: Columns later agegates added to the export (export.COLUMNS), with their types: a tree whose every file comes from
#: an agegate before one of them has no such column at all, which union_by_name cannot fill; read as NULL.
NEWER_COLUMNS = {"store_id": "VARCHAR", "till_id": "VARCHAR", "model": "VARCHAR", "p_under_25": "FLOAT",
                 "turn": "FLOAT"}


def _with_every_column(con, src: str) -> str:
    """`src` with each of NEWER_COLUMNS that no file has added as NULL (`src` itself when every one is there)."""
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    missing = [f"NULL::{kind} AS {name}" for name, kind in NEWER_COLUMNS.items() if name not in have]
    return f"(SELECT *, {', '.join(missing)} FROM {src})" if missing else src


def _load_events(con, src: str, tz: str, once: str, bounds: list[tuple[str, str | None]]) -> int:
    """One pass over the files into a compact in-memory table `ev` of the rows within `bounds` ((op, date); a None
    date: no bound); every aggregate reads that. Returns how many rows were copies (`_trees`), counted once."""
    import duckdb

    kept = [(op, d) for op, d in bounds if d]
    cond = "WHERE " + " AND ".join(f"date {op} ?::DATE" for op, _ in kept)
    params = [d for _, d in kept]
    local = "timezone(current_setting('TimeZone'), ts)" if tz != "UTC" else "ts"

    def load(source: str) -> None:
        con.execute(f"""CREATE TEMP TABLE ev AS SELECT box_id, date, coalesce(store_id, '?') AS store_id,
                        band, decision, model, turn, hour({local})::TINYINT AS hour,
                        isodow({local})::TINYINT AS dow
                        FROM {source} {cond} {once}""", params)

    try:
        try:
            load(src)
        except duckdb.BinderException:
            # A column no file has (every file from an agegate before it): read it as NULL. Only then, as the schema
            # pass it takes reads every file's footer again (18 s of 90,000 files, fleet-turn-column-epyc.txt).
            every = _with_every_column(con, src)
            if every == src:
                raise
            load(every)
        return con.execute(f"SELECT count(*) FROM {src} {cond}", params).fetchone()[0] - \
            con.execute("SELECT count(*) FROM ev").fetchone()[0] if once else 0
    except duckdb.Error as e:  # a damaged or foreign file in the tree (an interrupted sync): name it
        raise AgegateError(f"cannot read the export tree: {str(e).splitlines()[0]}; a file that is not an "
                           f"`agegate edge export` part (or was cut short in transfer) must be removed or synced "
                           f"again") from e


def _left_out_by_date(con, src: str, latest: str, date_from: str | None, date_to: str | None) -> list[dict]:
    """The rows dated before CLOCK_FLOOR_DATE or after `latest`, per box and side (FleetReport.unclocked): only the
    sides the asked range reaches (all of it, without --from / --to)."""
    sides = ([f"date < '{CLOCK_FLOOR_DATE}'::DATE"] if not date_from or date_from < CLOCK_FLOOR_DATE else []) + \
        ([f"date > '{latest}'::DATE"] if not date_to or date_to > latest else [])
    if not sides:
        return []
    return _rows(con, f"SELECT box_id, CASE WHEN date < '{CLOCK_FLOOR_DATE}'::DATE THEN 'before {CLOCK_FLOOR_DATE}' "
                      f"ELSE 'after {latest}' END AS dated, count(DISTINCT (event_id, ts)) AS buyers FROM {src} "
                      f"WHERE {' OR '.join(sides)} GROUP BY 1, 2 ORDER BY 1, 2")


def _tables(con, rep: FleetReport) -> None:
    """Every table of the report, from `ev`, over rep.date_from..rep.date_to."""
    bands = ", ".join(f"count(*) FILTER (WHERE band = '{b}') AS \"{b}\"" for b in BAND_LABELS)
    shares = ("count(*) AS buyers, round(avg((decision = 'id_check')::INT), 4) AS id_check_share, "
              "round(avg((decision = 'uncertain')::INT), 4) AS uncertain_share, "
              f"round(avg((turn > {MAX_SETUP_TURN})::INT), 4) AS turned_share")  # rows without a turn: left out
    rep.by_store_band = _rows(con, f"SELECT store_id, count(*) AS buyers, {bands} FROM ev GROUP BY 1 ORDER BY 1")
    rep.by_hour = _rows(con, f"SELECT hour, count(*) AS buyers, {bands} FROM ev GROUP BY 1 ORDER BY 1")
    rep.by_weekday = _rows(con, f"SELECT dow, count(*) AS buyers, {bands} FROM ev GROUP BY 1 ORDER BY 1")
    for r in rep.by_weekday:
        r["weekday"] = WEEKDAYS[int(r["dow"]) - 1]
    rep.per_box = _rows(con, f"SELECT box_id, any_value(store_id) AS store_id, {shares}, max(date) AS last_seen "
                             f"FROM ev GROUP BY 1 ORDER BY 1")
    rep.box_days = _rows(con, f"SELECT box_id, date, {shares} FROM ev GROUP BY 1, 2 ORDER BY 1, 2")
    cut = rep.recent_from
    rep.uncertain_jumps = [] if not cut else _rows(con, f"""
        WITH s AS (SELECT box_id,
                          avg((decision = 'uncertain')::INT) FILTER (WHERE date >= ?::DATE) AS recent,
                          avg((decision = 'uncertain')::INT) FILTER (WHERE date < ?::DATE) AS before,
                          count(*) FILTER (WHERE date >= ?::DATE) AS recent_buyers,
                          count(*) FILTER (WHERE date < ?::DATE) AS before_buyers
                   FROM ev GROUP BY 1)
        SELECT box_id, round(before, 4) AS uncertain_before, round(recent, 4) AS uncertain_recent, recent_buyers,
               before_buyers
        FROM s WHERE recent_buyers >= {JUMP_MIN_BUYERS} AND before_buyers >= {JUMP_MIN_BUYERS}
                     AND recent - before >= {JUMP_POINTS} AND recent >= 2 * before
        ORDER BY recent - before DESC""", [cut, cut, cut, cut])
    rep.turned_boxes = _rows(con, f"""
        SELECT box_id, count(turn) AS buyers_with_turn, round(avg((turn > {MAX_SETUP_TURN})::INT), 4) AS turned_share
        FROM ev GROUP BY 1
        HAVING count(turn) >= {JUMP_MIN_BUYERS} AND avg((turn > {MAX_SETUP_TURN})::INT) > {TURNED_SHARE}
        ORDER BY turned_share DESC, box_id""")
    rep.models = _rows(con, "SELECT coalesce(model, 'unknown') AS model, count(DISTINCT box_id) AS boxes, "
                            "count(*) AS buyers, min(date) AS first_seen, max(date) AS last_seen FROM ev "
                            "GROUP BY 1 ORDER BY boxes DESC, model")
    rep.missing_box_days = _rows(con, """
        SELECT b.box_id, d.date::DATE AS date
        FROM (SELECT DISTINCT box_id FROM ev) b,
             (SELECT unnest(generate_series(?::DATE, ?::DATE, INTERVAL 1 DAY)) AS date) d
        WHERE NOT EXISTS (SELECT 1 FROM (SELECT DISTINCT box_id, date FROM ev) h
                          WHERE h.box_id = b.box_id AND h.date = d.date::DATE)
        ORDER BY 1, 2""", [rep.date_from, rep.date_to])
