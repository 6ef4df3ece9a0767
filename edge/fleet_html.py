"""The fleet report on disk: index.html with PNG charts, one CSV per table, report.json.

Rendering only; the figures come from fleet.build_report. Charts are separate PNG files beside the
page (no script, no external font or file), so the page opens offline and from a synced bucket.
"""
from __future__ import annotations

import csv
import html
import json
from pathlib import Path

from .contracts import CLOCK_FLOOR_DATE
from .fleet import JUMP_MIN_BUYERS, RECENT_DAYS, TURNED_SHARE, FleetReport
from .setup_view import MAX_SETUP_TURN

CHARTS = ("buyers_by_hour.png", "buyers_by_weekday.png", "buyers_by_store.png", "uncertain_by_day.png")
MAX_STORES_CHARTED = 25


def write_charts(rep: FleetReport, out: Path) -> None:
    from .band_chart import stack_bands
    from .figures import pyplot, save_figure

    plt = pyplot()

    def save(fig, name):
        save_figure(fig, out / name, dpi=80)

    fig, ax = plt.subplots(figsize=(9, 3.6))
    stack_bands(ax, [str(r["hour"]) for r in rep.by_hour], rep.by_hour)
    ax.set_title(f"Buyers by hour of day ({rep.tz}) and age band")
    save(fig, CHARTS[0])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    stack_bands(ax, [str(r["weekday"]) for r in rep.by_weekday], rep.by_weekday)
    ax.set_title("Buyers by weekday and age band")
    save(fig, CHARTS[1])
    stores = sorted(rep.by_store_band, key=lambda r: -r["buyers"])[:MAX_STORES_CHARTED]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    stack_bands(ax, [str(r["store_id"]) for r in stores], stores)
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.set_title(f"Buyers by store and age band (top {len(stores)} of {rep.stores})")
    save(fig, CHARTS[2])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    by_day: dict[str, list[float]] = {}
    for r in rep.box_days:
        by_day.setdefault(r["date"], []).append(r["uncertain_share"])
    days = sorted(by_day)
    dots = "o" if len(days) <= 31 else None  # a line through one or a few days draws nothing without them
    ax.plot(days, [100 * sum(v) / len(v) for v in (by_day[d] for d in days)], color="#34495e", marker=dots,
            markersize=3, label="fleet (mean of boxes)")
    for j in rep.uncertain_jumps[:5]:
        rows = [r for r in rep.box_days if r["box_id"] == j["box_id"]]
        ax.plot([r["date"] for r in rows], [100 * r["uncertain_share"] for r in rows], marker=dots, markersize=3,
                label=f"{j['box_id']} (jumped)")
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))  # a share: never below 0, and a flat 0 % is drawn as such
    ax.set_ylabel("% uncertain")
    ax.set_title("Share of uncertain decisions per day")
    ax.set_xticks(days[:: max(1, len(days) // 12)])
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=7)
    save(fig, CHARTS[3])


def _table(rows: list[dict], limit: int = 50) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in keys) + "</tr>" for r in rows[:limit])
    more = f"<p>{len(rows) - limit} more rows in the CSV</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def write_report(rep: FleetReport, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_charts(rep, out)
    for name in FleetReport.TABLES:
        rows = getattr(rep, name)
        with open(out / f"{name}.csv", "w", newline="") as f:
            if rows:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    (out / "report.json").write_text(json.dumps(rep.to_json(), indent=2) + "\n")
    missing = len(rep.missing_box_days)
    jumps_note = "" if rep.jumps_looked_for else (
        f"; not looked for: this report covers {rep.days} days, with events on a span of {rep.event_days}")
    window = f" ({rep.recent_from} to {rep.recent_to})" if rep.jumps_looked_for else ""
    copies = (f" {rep.copies:,} rows found in more than one tree (the same box's files twice) were counted once."
              if rep.copies else "")
    unclocked = "" if not rep.unclocked else (
        f'<p id="unclocked">Left out: {rep.unclocked_words}; no agegate box ran before {CLOCK_FLOOR_DATE}, and none '
        f'is dated after tomorrow (check NTP on these boxes).</p>'
        + _table(rep.unclocked))
    unbanded = "" if not rep.unbanded else (
        f'<p id="unbanded">{rep.unbanded:,} buyers ({rep.unbanded / rep.rows:.1%}) have no age band (decided uncertain '
        f'with no face good enough to age): counted among the buyers, in none of these bars.</p>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>agegate fleet report</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px}} img{{max-width:100%;border:1px solid #eee}}</style></head><body>
<h1>agegate fleet report</h1>
<p id="scope">{rep.rows:,} buyers from <b>{rep.boxes}</b> boxes in {rep.stores} stores over <b>{rep.days}</b> days
({rep.date_from} to {rep.date_to}, hours in {html.escape(rep.tz)}); {missing} box-day(s) missing.
Read from {html.escape(', '.join(rep.sources))} in {rep.seconds:.1f} s.{copies}</p>{unclocked}
<h2>Buyers by age band</h2>{unbanded}
{''.join(f'<p><img class="chart" src="{c}" alt="{c}"></p>' for c in CHARTS[:3])}
<h2>Cameras to look at</h2><p>Boxes whose share of <code>uncertain</code> over the last {RECENT_DAYS} days with events{window} jumped from the
days before (a camera that moved, a lamp that died){jumps_note}:</p>{_table(rep.uncertain_jumps)}
<p><img class="chart" src="{CHARTS[3]}" alt="{CHARTS[3]}"></p>
<p>Boxes where more than {TURNED_SHARE:.0%} of the buyers (of {JUMP_MIN_BUYERS} or more with a turn recorded) were seen
turned more than {MAX_SETUP_TURN} (about 20 degrees) on most of their frames: a camera beside where buyers look, which
asks more buyers for ID (README, "Turned faces"); check it with the box's <code>/setup</code> page.</p>
{_table(rep.turned_boxes)}
<h2>Per box</h2>{_table(rep.per_box)}
<h2>Models running</h2>{_table(rep.models)}
<h2>Missing box-days</h2>{_table(rep.missing_box_days)}
<p>Tables: {', '.join(f'<a href="{t}.csv">{t}.csv</a>' for t in FleetReport.TABLES)}; all figures: <a href="report.json">report.json</a>.</p>
</body></html>"""
    index = out / "index.html"
    index.write_text(page)
    return index
