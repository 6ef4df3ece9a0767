"""`agegate data report`: the brief's exploratory analysis as one HTML page plus PNGs."""
from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from agegate.edge.bands import BAND_LABELS, band_of
from agegate.edge.figures import counts_axis, pyplot, save_figure
from agegate.edge.preprocess import decode_image

from .check import CheckResult, splits_in_words


def write_report(result: CheckResult, out: Path, samples_per_band: int = 6, seed: int = 0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    ok = [i for i in result.infos if i.ok]
    ages = np.array([i.record.age for i in ok])
    summary = result.summary()

    fig, ax = plt.subplots(figsize=(9, 3.2))
    if len(ages):
        ax.hist(ages, bins=np.arange(0, max(ages.max(), 1) + 2) - 0.5, color="#3b6ea8")
    ax.set_xlabel("age (years)"); ax.set_ylabel("images"); ax.set_title("Age histogram (1-year bins)")
    counts_axis(ax)
    save_figure(fig, out / "age_histogram.png")

    band_counts = Counter(band_of(a) for a in ages)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(BAND_LABELS, [band_counts.get(b, 0) for b in BAND_LABELS], color="#6a9e4f")
    ax.set_title("Images per age band"); ax.tick_params(axis="x", rotation=30)
    counts_axis(ax)
    save_figure(fig, out / "age_bands.png")

    size_counts = Counter((int(i.width), int(i.height)) for i in ok)  # the chart's dots and the table's rows
    fig, ax = plt.subplots(figsize=(5, 4))
    if size_counts:
        # One dot per size, its area by how many images have it: a set of one size (UTKFace's 200x200 chips) is
        # one dot, which drawn like the others said nothing of the 21,292 images under it.
        keys = sorted(size_counts)
        uniq, counts = np.array(keys), np.array([size_counts[k] for k in keys])
        ax.scatter(uniq[:, 0], uniq[:, 1], s=8 + 400 * np.sqrt(counts / counts.max()), alpha=0.4)
        top = int(np.argmax(counts))  # the most common size named (the table below lists the next ones)
        ax.annotate(f"{uniq[top, 0]}x{uniq[top, 1]}: {counts[top]:,}", (uniq[top, 0], uniq[top, 1]), fontsize=8,
                    xytext=(10, -14), textcoords="offset points")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True)); ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("width (px)"); ax.set_ylabel("height (px)")
    ax.set_title(f"Image sizes ({len(ok):,} images, dot area by count)")
    save_figure(fig, out / "image_sizes.png")

    _sample_grid(ok, out / "samples.png", samples_per_band, seed)

    rows = "".join(
        f"<tr><td>{b}</td><td>{band_counts.get(b, 0)}</td><td>{100 * band_counts.get(b, 0) / max(1, len(ages)):.1f}%</td></tr>"
        for b in BAND_LABELS)
    size_rows = "".join(f"<tr><td>{w}x{h}</td><td>{n}</td></tr>" for (w, h), n in size_counts.most_common(8))
    prob_rows = "".join(
        f"<tr><td>{html.escape(p.kind)}</td><td>{p.severity}</td><td>{html.escape(p.file)}</td>"
        f"<td>{p.line or ''}</td><td>{html.escape(p.detail)}</td></tr>" for p in result.problems[:500])

    def img(name: str) -> str:
        data = base64.b64encode((out / name).read_bytes()).decode()
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    ages = (f"Ages {summary['age_min']:g} to {summary['age_max']:g} (mean {summary['age_mean']})." if summary["ok"]
            else "No usable image.")
    boxed = sum(i.record.box is not None for i in ok)
    boxes_note = (f"<p>{boxed} of {len(ok)} images mark the labelled person's face (face_x,face_y,face_w,face_h): "
                  f"outlined in yellow. Check that each outline holds the face the age belongs to.</p>" if boxed else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>agegate data report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} img{{max-width:100%}}</style></head><body>
<h1>Data report: {html.escape(summary['dataset'])}</h1>
<p>Format <b>{summary['format']}</b>: {summary['records']} labelled records, <b>{summary['ok']} readable images</b>,
{summary['errors']} errors, {summary['warnings']} warnings. {ages}
Splits: {html.escape(splits_in_words(summary['splits']))}.</p>
<h2>Ages</h2>{img('age_histogram.png')}
<h2>Age bands</h2><table><tr><th>band</th><th>images</th><th>share</th></tr>{rows}</table>{img('age_bands.png')}
<h2>Image sizes</h2><table><tr><th>size</th><th>images</th></tr>{size_rows}</table>{img('image_sizes.png')}
<h2>Sample faces per band</h2>{boxes_note}{img('samples.png')}
<h2>Problems ({len(result.problems)})</h2>
<table><tr><th>kind</th><th>severity</th><th>file</th><th>line</th><th>detail</th></tr>{prob_rows}</table>
</body></html>"""
    (out / "report.html").write_text(page)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out / "report.html"


def _sample_grid(ok, path: Path, per_band: int, seed: int) -> None:
    plt = pyplot()
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(BAND_LABELS), per_band, figsize=(per_band * 1.3, len(BAND_LABELS) * 1.4))
    for r, band in enumerate(BAND_LABELS):
        pool = [i for i in ok if band_of(i.record.age) == band]
        pick = rng.choice(len(pool), size=min(per_band, len(pool)), replace=False) if pool else []
        for c in range(per_band):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(pick):
                info = pool[int(pick[c])]
                ax.imshow(outlined(decode_image(info.record.path), info.record.box))
                ax.set_title(f"{info.record.age:g}", fontsize=7)
        axes[r, 0].text(-0.15, 0.5, band, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    save_figure(fig, path, dpi=80)


def outlined(rgb: np.ndarray, box: tuple[float, float, float, float] | None) -> np.ndarray:
    """`rgb` with a labelled face box drawn in yellow (a copy), so a person sees whose face a row labels;
    the image itself when there is no box."""
    if box is None:
        return rgb
    out = rgb.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    thickness = max(2, round(max(out.shape[:2]) / 60))  # still seen when the grid shows the image ~100 px wide
    cv2.rectangle(out, (x0, y0), (x1, y1), (255, 220, 0), thickness)
    return out

