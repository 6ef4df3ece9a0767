"""`agegate edge run` and `agegate edge stats`."""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from .cli_types import json_option
from .detect import DETECTORS
from .errors import UsageError


@click.group()
def edge() -> None:
    """The checkout box: run the camera pipeline, read its statistics."""


@edge.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="box.toml")
@click.option("--source", help="Camera index, /dev/videoN, video file, image folder, rtsp:// or http:// URL.")
@click.option("--rotate", type=click.Choice(["0", "90", "180", "270"]),
              help="Turn every frame this many degrees clockwise first: a camera mounted on its side or upside "
              "down [0].")
@click.option("--model", type=click.Path(), help="A .tflite with its .json [default: the shipped model].")
@click.option("--threads", type=int, help="LiteRT threads [2].")
@click.option("--box-id", help="This box's id in events [box-1].")
@click.option("--detector", type=click.Choice(DETECTORS), help="Face detector [blazeface-short].")
@click.option("--id-threshold", type=float, help="Ask for ID below this fused age [25, Challenge 25]; a calibrated "
              "model decides by its operating point instead (the box warns when this is set).")
@click.option("--events", type=click.Path(dir_okay=False), help="SQLite events file [events.sqlite].")
@click.option("--host", help="HTTP endpoint address [127.0.0.1].")
@click.option("--port", type=int, help="HTTP endpoint port [8765]; 0 picks a free one.")
@click.option("--token", help="Bearer token the HTTP endpoint requires.")
@click.option("--no-api", is_flag=True, help="Do not start the HTTP endpoint.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--sequence", is_flag=True,
              help="--source FOLDER holds the frames of one video; by default each image is its own buyer.")
@click.option("--record", type=click.Path(dir_okay=False),
              help="SET-UP ONLY: write an annotated video (this stores faces; never leave it on).")
@click.option("--display", is_flag=True, help="SET-UP ONLY: show annotated frames in a window.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per decision.")
def run(config_path, source, rotate, model, threads, box_id, detector, id_threshold, events, host, port, token, no_api,
        max_frames, sequence, record, display, as_json):
    """Watch the till: detect faces, estimate ages on-device, decide ok / id_check / uncertain.

    One line (or JSON object) per buyer; events go to SQLite without any image.
    SIGINT/SIGTERM finish the current frame, flush events, release the camera, exit 0.
    """
    from .api import make_server, serve_in_background
    from .capture import FrameSource, check_source
    from .config import BoxConfig, load_config, runtime_plan
    from .default_model import resolve_model
    from .errors import AgegateError
    from .events import EventStore
    from .pipeline import BoxPipeline
    from .runtime import AgeModel

    cfg = (load_config(config_path) if config_path else BoxConfig()).override({
        "source.uri": source, "source.rotate": None if rotate is None else int(rotate), "model.path": model,
        "model.threads": threads, "box.id": box_id, "detector.name": detector, "decision.id_threshold": id_threshold,
        "events.path": events, "api.host": host, "api.port": port, "api.token": token,
        "api.enabled": False if no_api else None})
    plan = runtime_plan(cfg, sequence)
    if plan.source is None:
        raise UsageError("no source: pass --source or set source.uri in --config")
    age_model = AgeModel(resolve_model(plan.model_path), threads=plan.box.threads)  # fails before the camera opens
    server = None
    if plan.api.enabled:  # bind before anything else starts: a taken port is a clear error, nothing to undo
        server = make_server(None, plan.api.host, plan.api.port, plan.api.token or None)
    try:  # a folder without images, an unreadable file: refused before the events file exists
        check_source(str(plan.source))
    except AgegateError:
        if server is not None:
            server.server_close()
        raise
    store = EventStore(plan.events_path, plan.retention_days)
    pipeline = BoxPipeline(age_model, plan.box, store)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    src = FrameSource(str(plan.source), plan.source_options)
    if server is not None:
        server.pipeline = pipeline
        serve_in_background(server)
        click.echo(f"http://{server.server_address[0]}:{server.server_address[1]}  (/decision /last /healthz /metrics)",
                   err=True)
    setup = SetupOutput(record, display) if record or display else None
    if setup is not None:
        click.secho("SET-UP MODE: annotated frames are being kept/shown; this stores biometric images.",
                    fg="yellow", err=True)

    def on_decision(d):
        if as_json:
            click.echo(json.dumps(d.to_dict()))
        else:
            risk = f", P(under 25) {d.risk:.2f}" if d.risk is not None else ""
            click.echo(f"buyer #{d.track_id}: age {d.age if d.age is not None else '?'} ({d.band or '-'}{risk}) -> "
                       f"{d.decision}  [{d.good_frames}/{d.frames} frames]" + (f"  ({d.reason})" if d.reason else ""))

    turn = f" turned {plan.source_options.rotate} degrees" if plan.source_options.rotate else ""
    click.echo(f"agegate edge: {src.kind} {src.shown}{turn} -> {age_model.path.name} ({age_model.runtime}, "
               f"{plan.box.threads} threads); events {plan.events_path}", err=True)
    try:
        n = pipeline.run(src, stop, on_decision, setup, max_frames)
    finally:
        if setup is not None:
            setup.close()
        if server is not None:
            server.shutdown()
        store.close()
    if src.error:
        click.echo(f"source error: {src.error}", err=True)
    for why in src.skipped:
        click.echo(f"skipped: {why}", err=True)
    click.echo(f"{n} frames, {sum(pipeline.metrics.decisions.values())} buyers; events in {plan.events_path}",
               err=True)
    if bystanders := pipeline.metrics.bystanders:  # else a group photo's smaller faces would vanish unsaid
        click.echo(f"{bystanders} face{'s' * (bystanders > 1)} seen only behind a larger one (someone further back: "
                   f"no decision)", err=True)


class SetupOutput:
    """`edge run --record FILE` / `--display`: each frame annotated with its faces and decisions, written to a
    video or shown in a window. For setting a camera up only: these are images of buyers."""

    def __init__(self, record: str | None, display: bool):
        self.record, self.display = record, display
        self.writer = None

    def __call__(self, frame, pipe) -> None:
        import cv2

        img = pipe.annotate(frame.rgb)
        if self.record:
            if self.writer is None:
                self.writer = cv2.VideoWriter(self.record, cv2.VideoWriter_fourcc(*"mp4v"), 15,
                                              (img.shape[1], img.shape[0]))
                if not self.writer.isOpened():  # else every frame would be dropped without a word
                    raise UsageError(f"--record {self.record}: OpenCV cannot write a video there; give an .mp4 "
                                     f"path in a folder that exists and is writable")
            self.writer.write(img)
        if self.display:
            try:
                cv2.imshow("agegate (set-up)", img)
                cv2.waitKey(1)
            except cv2.error:
                raise UsageError("--display needs an OpenCV build with GUI support (opencv-python, not headless)")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


@edge.command()
@click.option("--events", required=True, type=click.Path(exists=True, dir_okay=False), help="events.sqlite")
@click.option("--by", type=click.Choice(["band", "hour", "day"]), default="band", show_default=True,
              help="Buyers per age band, or per hour or day stacked by band.")
@click.option("--png", type=click.Path(dir_okay=False), help="Write a bar chart here.")
@json_option
def stats(events, by, png, as_json):
    """Buyers by age band (per hour or day) and the share of ID checks: the marketing view."""
    from .bands import BAND_LABELS
    from .events import read_events
    from .setup_view import MAX_SETUP_TURN
    from .stats import summarize_events, write_chart

    summary = summarize_events(read_events(events), by)
    if png:
        write_chart(summary, by, Path(png))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['buyers']} buyers, {summary['id_checks']} ID checks "
               f"({(summary['id_check_share'] or 0):.1%})")
    if summary["uncertain_reasons"]:
        click.echo("uncertain because: " + ", ".join(f"{k} {n}" for k, n in
                                                     sorted(summary["uncertain_reasons"].items(), key=lambda x: -x[1])))
    if summary["turned_share"] is not None:
        click.echo(f"seen turned past {MAX_SETUP_TURN}: {summary['turned_share']:.0%} of "
                   f"{summary['buyers_with_turn']} buyers (most: a camera beside where buyers look; check /setup)")
    if by == "band":
        for b in BAND_LABELS:
            click.echo(f"  {b:>6} {summary['by_band'][b]:>6}")
    else:
        click.echo(f"{by:>16} " + " ".join(f"{b:>6}" for b in BAND_LABELS) + "  ID checks")
        for k, row in summary["by_" + by].items():
            click.echo(f"{k:>16} " + " ".join(f"{row[b]:>6}" for b in BAND_LABELS) + f"  {row['id_checks']:>9}")
    if png:
        click.echo(f"chart: {png}")


@edge.command()
@click.option("--events", required=True, type=click.Path(dir_okay=False), help="The box's events.sqlite.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Export tree (Hive layout box_id=.../date=...); sync it to the chain after the run.")
@json_option
def export(events, out, as_json):
    """Append new events to a Parquet tree for `agegate fleet report` (incremental, crash-safe).

    \b
    Only event rows leave the box (no image, no embedding). A watermark beside the database
    (EVENTS.export.json) remembers the last exported row: run it as often as you like (cron,
    systemd timer); a run killed midway is completed by the next, with no row lost or doubled.
    """
    from .export import export_events, watermark_path
    from .progress import progress

    with progress(None, "export", "row") as bar:
        r = export_events(events, out, bar.update)
    if as_json:
        click.echo(json.dumps(r.to_json(), indent=2))
        return
    if r.removed_uncommitted:
        click.echo(f"removed {r.removed_uncommitted} file(s) an interrupted export had left; rewritten now")
    if r.earlier_out:
        click.echo(f"note: rows 1..{r.watermark_before} were exported to {r.earlier_out} (the watermark beside "
                   f"{events}); {out} gets only later rows. To export every row to {out}, delete "
                   f"{watermark_path(Path(events))} first")
    click.echo(f"{r.rows} new event(s) -> {len(r.files)} file(s) under {out} (rows {r.watermark_before + 1}.."
               f"{r.watermark_after})" if r.rows else f"nothing new since row {r.watermark_before}")
