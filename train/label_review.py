"""Training labels worth a person's look: those a trained model finds implausible, listed and drawn for review.

Wrong labels teach the model ages no face shows. Leaving out 20 of them may have given v2.5 0.03 years of AAF val
MAE; its per-buyer Challenge-25 figure moved little more than two placebos' (20 random images left out:
MODEL_HISTORY.md, "A placebo for the wrong labels"). They were found this way: a label far outside the model's
own age distribution for the face is either the model's error or the label's, and a person tells which in a
glance. The model proposes; only a person's check puts an image on an exclusion list (train/label_errors.py's
format), so the list never learns the model's own mistakes.

`agegate data review` runs a model over a split (through the box's crop when the model was trained on it) and
writes what `write_review` does here: a table, contact sheets, and a to-check list in the exclusion format.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from agegate.edge.age_head import AgeHead, interval
from agegate.edge.detect import FaceBox
from agegate.edge.errors import UsageError

from .label_errors import LabelExclusion

#: A contact sheet's grid: 20 faces, big enough to tell a child from an adult at a glance.
SHEET_COLUMNS, SHEET_ROWS, TILE_PX, CAPTION_PX = 5, 4, 200, 18


@dataclass(frozen=True)
class LabelSuspect:
    """One label the model finds implausible for its face: outside the model's central interval and far from its
    estimate."""

    number: int  # its place in the review (sheets and lists use it)
    path: str
    line: int | None  # its label line (None for labels in file names)
    label: float
    estimate: float
    low: float  # the model's central interval for the face
    high: float
    face: tuple[float, float, float, float] | None = None  # the box the detector took, when it ran
    group: bool = False  # its photo has a label row per face: lists name it PATH:LINE

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.group else self.path

    def to_dict(self) -> dict:
        return asdict(self) | {"face": list(self.face) if self.face else None}


def label_suspects(paths: Sequence[str], lines: Sequence[int | None], labels: np.ndarray, estimates: np.ndarray,
                   probs: np.ndarray, head: AgeHead, *, level: float = 0.99, min_gap: float = 10.0,
                   faces: Sequence[FaceBox | None] | None = None) -> list[LabelSuspect]:
    """Images whose label lies outside the central `level` interval of the model's distribution (`probs`, at its
    calibrated temperature) and at least `min_gap` years from its estimate (the point estimate `agegate eval`
    reports, `Predictions.y_pred`, so a reviewer reads the same number in both), ordered by label, then estimate,
    so that a reviewer sees like with like. Both conditions: the interval alone flags every confident face a few
    years off, the gap alone every uncertain one."""
    labels, estimates = np.asarray(labels, np.float64), np.asarray(estimates, np.float64)
    low, high = interval(probs, head, level)
    far = ((labels < low) | (labels > high)) & (np.abs(labels - estimates) >= min_gap)
    order = sorted(np.flatnonzero(far), key=lambda i: (labels[i], estimates[i]))
    faces = faces if faces is not None else [None] * len(paths)
    rows = Counter(paths)
    return [LabelSuspect(n, str(paths[i]), lines[i], float(labels[i]), round(float(estimates[i]), 1), float(low[i]),
                         float(high[i]), faces[i].corners if faces[i] is not None else None, rows[paths[i]] > 1)
            for n, i in enumerate(order)]


def not_listed(suspects: list[LabelSuspect], listed: list[LabelExclusion]) -> list[LabelSuspect]:
    """The suspects no exclusion list names yet (a second look skips what the first found), renumbered."""
    left = [s for s in suspects if not any(e.matches(s.path, s.line) for e in listed)]
    return [replace(s, number=n) for n, s in enumerate(left)]


def listing_line(s: LabelSuspect, root: str | None = None) -> str:
    """A to-check line in the exclusion format, commented out: the reviewer uncomments a wrong one and says what
    the face shows. `root`: the folder the list's paths are relative to (../shared/datasets for the project's)."""
    path = _relative(s.path, root) + (f":{s.line}" if s.group else "")
    return (f"# {path}  labelled {s.label:g}; the model estimates {s.estimate:.0f} "
            f"(#{s.number}; WHAT THE FACE SHOWS)")


def _relative(path: str, root: str | None) -> str:
    """`path` under `root` (as exclusion lists name images), or as it is when outside it or without a root."""
    if root:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path


def check_no_review_in(out: Path) -> None:
    """Refuse an --out whose to-check.txt holds a reviewer's work (uncommented lines): a new review wrote its own
    listing over it, every line commented out again, and the marks were lost."""
    listing = out / "to-check.txt"
    if not listing.is_file():
        return
    marked = [ln for ln in listing.read_text(encoding="utf-8", errors="replace").splitlines()
              if ln.strip() and not ln.lstrip().startswith("#")]
    if marked:
        raise UsageError(f"{listing} holds {len(marked)} line(s) a reviewer uncommented; a new review would write over "
                         f"them: give another --out, or move that file away first (train takes it with --exclude)")


def write_review(suspects: list[LabelSuspect], out: Path, root: str | None = None) -> list[Path]:
    """review.tsv (one row each; paths under `root` when given), to-check.txt (the exclusion format, every line
    commented out) and contact sheets sheet-NN.png (20 faces each, captioned with number, label and estimate;
    the detector's box drawn on a photo). Returns the files written."""
    check_no_review_in(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "review.tsv"
    with table.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["number", "path", "line", "label", "estimate", "interval_low", "interval_high"])
        for s in suspects:
            w.writerow([s.number, _relative(s.path, root), s.line if s.group else "", f"{s.label:g}",
                        f"{s.estimate:.1f}", f"{s.low:g}", f"{s.high:g}"])
    listing = out / "to-check.txt"
    listing.write_text("# Labels the model finds implausible. Look at each (sheet-NN.png, by number); uncomment the\n"
                       "# lines whose label the face plainly contradicts, and replace the text in capitals with what\n"
                       "# you saw. Then: agegate train ... --exclude to-check.txt\n"
                       + "".join(listing_line(s, root) + "\n" for s in suspects), encoding="utf-8")
    per = SHEET_COLUMNS * SHEET_ROWS
    for stale in out.glob("sheet-*.png"):  # an earlier review's pages would pass for this one's
        stale.unlink()
    sheets = [_sheet(suspects[k: k + per], out / f"sheet-{k // per + 1:02d}.png") for k in range(0, len(suspects), per)]
    return [table, listing, *sheets]


def _sheet(suspects: list[LabelSuspect], path: Path) -> Path:
    from PIL import Image, ImageDraw

    columns, rows = min(len(suspects), SHEET_COLUMNS), -(-len(suspects) // SHEET_COLUMNS)  # the last page: as used
    sheet = Image.new("RGB", (columns * TILE_PX, rows * (TILE_PX + CAPTION_PX)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, s in enumerate(suspects):
        x, y = (k % SHEET_COLUMNS) * TILE_PX, (k // SHEET_COLUMNS) * (TILE_PX + CAPTION_PX)
        draw.text((x + 3, y + 3), f"#{s.number} label {s.label:g} est {s.estimate:.0f}", fill="black")
        try:
            with Image.open(s.path) as im:
                im = im.convert("RGB")
                if s.face is not None:  # which face of the photo the model aged
                    ImageDraw.Draw(im).rectangle(s.face, outline=(255, 0, 0), width=max(2, im.width // 100))
                im.thumbnail((TILE_PX - 4, TILE_PX - 4))
                sheet.paste(im, (x, y + CAPTION_PX))
        except OSError as e:  # the image went away since it was read: say so on its tile
            draw.text((x + 3, y + CAPTION_PX + 3), f"unreadable: {e.__class__.__name__}", fill="red")
    sheet.save(path)
    return path
