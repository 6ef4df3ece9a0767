"""`agegate fleet report`: the chain's view over the boxes' Parquet exports (fleet.py, fleet_html.py)."""
from __future__ import annotations

import json

import click

from .cli_types import json_option


@click.group()
def fleet() -> None:
    """The chain's view: reports over the event exports of many boxes."""


@fleet.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC date partition).")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last day, inclusive.")
@click.option("--tz", default="UTC", show_default=True, help="Time zone for hours and weekdays, e.g. Europe/London.")
@click.option("--out", type=click.Path(file_okay=False), help="Write index.html, PNG charts and CSV tables here.")
@json_option
def report(dirs, date_from, date_to, tz, out, as_json):
    """Buyers by age band per store, hour and weekday; ID-check, uncertain and turned shares per box; cameras to
    look at (uncertain jumps, buyers seen turned); models.

    \b
    DIRS are export trees (`agegate edge export --out`), e.g. one folder per store or a synced bucket:
      agegate fleet report /mnt/exports --from 2026-09-01 --to 2026-11-30 --out report/
    """
    from .fleet import RECENT_DAYS, build_report
    from .setup_view import MAX_SETUP_TURN

    fmt = lambda d: d.date().isoformat() if d else None  # noqa: E731
    rep = build_report(list(dirs), fmt(date_from), fmt(date_to), tz)
    index = None
    if out:
        from .fleet_html import write_report

        index = write_report(rep, out)
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2))
        return
    click.echo(f"{rep.rows:,} buyers, {rep.boxes} boxes, {rep.stores} stores, {rep.days} days "
               f"({rep.date_from}..{rep.date_to}); {len(rep.missing_box_days)} box-day(s) missing; {rep.seconds:.1f} s")
    if rep.copies:
        click.echo(f"counted once: {rep.copies:,} rows found in more than one tree (the same box's files twice)")
    if rep.unclocked:
        boxes = sorted({r["box_id"] for r in rep.unclocked})
        click.echo(f"left out: {rep.unclocked_words}: check NTP on " + ", ".join(boxes[:10])
                   + (", ..." if len(boxes) > 10 else ""))
    total = max(1, rep.rows)
    click.echo("  ".join(f"{b} {sum(r[b] for r in rep.by_store_band) / total:.0%}" for b in
                         [k for k in rep.by_store_band[0] if k not in ("store_id", "buyers")])
               + (f"  no band {rep.unbanded / total:.0%} (uncertain, no face to age)" if rep.unbanded else ""))
    if not rep.jumps_looked_for:
        click.echo(f"uncertain jumps: not looked for (they compare the last {RECENT_DAYS} days with events with the "
                   f"days before; this report covers {rep.days}, with events on a span of {rep.event_days})")
    for j in rep.uncertain_jumps[:10]:
        click.echo(f"uncertain jumped: {j['box_id']} {j['uncertain_before']:.1%} -> {j['uncertain_recent']:.1%} "
                   f"({rep.recent_from} to {rep.recent_to} against the days before)")
    for t in rep.turned_boxes[:10]:
        click.echo(f"buyers seen turned: {t['box_id']} {t['turned_share']:.0%} of {t['buyers_with_turn']} turned past "
                   f"{MAX_SETUP_TURN} (a camera beside where buyers look: check it with /setup)")
    click.echo("models: " + ", ".join(f"{m['model']} ({m['boxes']} boxes)" for m in rep.models))
    if index:
        click.echo(f"report: {index}")
