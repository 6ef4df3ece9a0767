"""`agegate demo`: the whole box pipeline on embedded faces with the shipped model.

It needs no camera and no network: public-domain portraits with known ages
(agegate/edge/assets/demo) become a short checkout clip, one buyer after another,
which runs through the real capture -> detect -> crop -> int8 age -> track ->
decision -> events path. Output: one line per buyer, an annotated video, the
events database and the marketing chart, in --out.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

from .cli_types import threads_option
from .contracts import IMAGE_EXTS
from .default_model import assets_dir, resolve_model

CANVAS = (640, 480)


def demo_faces(extra: Path | None = None, unreadable: list[Path] | None = None) -> list[tuple[Path, float | None]]:
    """(image, known age or None) for the shipped portraits plus any in `extra` (age from the file name). A
    file in `extra` that does not decode is left out (appended to `unreadable`, for the demo to say so)."""
    paths = sorted((assets_dir() / "demo").glob("*.jpg"))
    if extra is not None:
        for p in sorted(p for p in Path(extra).iterdir() if p.suffix.lower() in IMAGE_EXTS):
            if cv2.imread(str(p)) is not None:
                paths.append(p)
            elif unreadable is not None:
                unreadable.append(p)
    out = []
    for p in paths:
        m = re.search(r"(?:^|_)(\d{1,3})(?:_|\.|$)", p.stem) or re.match(r"^(\d{1,3})_", p.name)
        out.append((p, float(m.group(1)) if m else None))
    return out


def make_clip(faces: list[Path], path: Path, frames_per_buyer: int = 24, gap: int = 14, fps: int = 15) -> Path:
    """A 640x480 clip: each portrait centred on a till-grey background, with empty frames between buyers."""
    w, h = CANVAS
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise click.ClickException(f"OpenCV cannot write {path}")
    blank = np.full((h, w, 3), 90, np.uint8)
    rng = np.random.default_rng(0)
    for face in faces:
        img = cv2.imread(str(face))
        s = min((h - 40) / img.shape[0], (w - 40) / img.shape[1], 1.0)
        img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        for i in range(frames_per_buyer):
            frame = blank.copy()
            dx = int(6 * np.sin(i / 4))  # the buyer moves a little
            y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2 + dx
            frame[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
            noise = rng.normal(0, 2, frame.shape)  # sensor noise, so frames are not identical
            writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
        for _ in range(gap):
            writer.write(blank)
    writer.release()
    return path


@click.command()
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [a new temp folder].")
@click.option("--model", type=click.Path(exists=True, dir_okay=False), help="A .tflite [the shipped default].")
@click.option("--faces", type=click.Path(exists=True, file_okay=False),
              help="Add your own portraits (an age in the file name, e.g. 'anna_31.jpg', is shown for comparison).")
@threads_option
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (the model, every buyer's decision, the files written) instead of lines.")
def demo(out, model, faces, threads, as_json):
    """Run the checkout-box pipeline on embedded public-domain portraits. No camera, no network."""
    from .capture import FrameSource
    from .events import EventStore, read_events
    from .pipeline import BoxOptions, BoxPipeline
    from .runtime import AgeModel
    from .stats import summarize_events, write_chart

    def say(line: str) -> None:
        if not as_json:
            click.echo(line)

    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="agegate-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model(model)
    age_model = AgeModel(model_path, threads=threads)
    meta = age_model.meta
    test = meta.metrics.get("test", {})
    say(f"model: {model_path.name} ({meta.backbone}, {meta.input_size}px, {meta.quantization}"
        + (f", test MAE {test['mae']:.2f} on {test['n']} UTKFace images" if test else "") + ")")
    unreadable: list[Path] = []
    people = demo_faces(Path(faces) if faces else None, unreadable)
    for p in unreadable:
        say(f"skipped {p}: not a readable image")
    clip = make_clip([p for p, _ in people], out_dir / "checkout_clip.mp4")
    events_path = out_dir / "events.sqlite"
    events_path.unlink(missing_ok=True)
    store = EventStore(events_path, retention_days=0)
    pipeline = BoxPipeline(age_model, BoxOptions(threads=threads), store)
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    annotated = cv2.VideoWriter(str(out_dir / "annotated.mp4"), fourcc, 15, CANVAS)
    decisions = []

    def on_frame(frame, pipe):
        annotated.write(pipe.annotate(frame.rgb))

    frames = pipeline.run(FrameSource(str(clip)), on_decision=decisions.append, on_frame=on_frame)
    annotated.release()
    store.close()
    buyers = []
    for (path, known), d in zip(people, sorted(decisions, key=lambda d: d.track_id)):
        buyers.append({"portrait": path.name, "age_in_photo": known, **d.to_dict()})
        truth = f" (about {known:g} in the photo)" if known else ""
        say(f"buyer #{d.track_id} {path.name}: estimated age {d.age if d.age is not None else '?'}{truth}, "
            f"band {d.band}" + (f", P(under 25) {d.risk:.2f}" if d.risk is not None else "")
            + f", decision {d.decision}" + (f" ({d.reason})" if d.reason else ""))
    if len(decisions) != len(people):
        say(f"note: {len(decisions)} decisions for {len(people)} portraits (a face was missed or split)")
    summary = summarize_events(read_events(events_path))
    write_chart(summary, "band", out_dir / "buyers_by_band.png")
    fps = pipeline.metrics.fps()
    p50, _ = pipeline.metrics.percentiles("frame")
    say(f"{frames} frames at {fps:.0f} fps (frame p50 {p50:.1f} ms); no image kept in the events.")
    written = ["annotated.mp4", "events.sqlite", "buyers_by_band.png", "checkout_clip.mp4"]
    say(f"wrote {out_dir}/: {', '.join(written)}")
    if as_json:
        click.echo(json.dumps({"ok": True, "model": str(model_path), "portraits": len(people),
                               "decisions": len(decisions), "buyers": buyers,
                               "skipped": [str(p) for p in unreadable], "frames": frames, "fps": round(fps, 1),
                               "frame_p50_ms": round(p50, 2), "out": str(out_dir),
                               "files": [str(out_dir / f) for f in written]}, indent=2))
