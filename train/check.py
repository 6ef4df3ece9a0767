"""`agegate data check`: validate every record, never stop at the first bad one.

Per image: exists, not empty, decodes completely, colour mode (grey, RGBA, 16-bit,
CMYK are reported with whether they are readable after conversion), size. Across
the set: duplicate names (from the reader), duplicate content (same bytes), ages.
Decoding runs in a thread pool (OpenCV releases the GIL).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agegate.edge.preprocess import ImageDecodeError, decode_bytes
from agegate.edge.progress import tracked

from .datasets import Dataset, Problem, Record


@dataclass
class ImageInfo:
    record: Record
    ok: bool
    width: int = 0
    height: int = 0
    digest: str = ""
    problems: list[Problem] = field(default_factory=list)


@dataclass
class CheckResult:
    dataset: Dataset
    infos: list[ImageInfo]
    problems: list[Problem]

    @property
    def ok_records(self) -> list[Record]:
        return [i.record for i in self.infos if i.ok]

    @property
    def n_ok(self) -> int:
        return sum(i.ok for i in self.infos)

    @property
    def n_errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    def summary(self) -> dict:
        ages = np.array([r.age for r in self.ok_records]) if self.n_ok else np.array([np.nan])
        return {
            "dataset": str(self.dataset.root.resolve()),  # "." for a CSV given in the working folder says nothing
            "format": self.dataset.format,
            "records": len(self.dataset.records),
            "ok": self.n_ok,
            "errors": self.n_errors,
            "warnings": sum(p.severity == "warning" for p in self.problems),
            "problems_by_kind": dict(Counter(p.kind for p in self.problems)),
            "age_min": float(ages.min()) if self.n_ok else None,  # no usable image: no age range to claim
            "age_max": float(ages.max()) if self.n_ok else None,
            "age_mean": round(float(ages.mean()), 2) if self.n_ok else None,
            "splits": dict(Counter(r.split or "none" for r in self.ok_records)),
            "problems": [p.to_dict() for p in self.problems],
        }


SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def splits_in_words(splits: dict[str, int]) -> str:
    """A summary's `splits` as data check and data report say them: `train 17,034, val 2,129, test 2,129`, or for a
    set without splits what each command does with it (a dict printed as it is read `{'none': 60}`)."""
    words = [f"{name} {n:,}" for name, n in sorted(splits.items(), key=lambda kv: SPLIT_ORDER.get(kv[0], 9))
             if name != "none"]
    if "none" in splits:
        whole = (f"{splits['none']:,} in no split" if words else "no split") + (
            " (train makes a seeded, person-aware one and records it; eval and calibration take the set whole)")
        words.append(whole)
    return ", ".join(words) or "none"


def jpeg_components(data: bytes) -> int | None:
    """Number of colour components in a JPEG's frame header (4 = CMYK/YCCK), None if not found."""
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        seg_len = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return data[i + 9]
        i += 2 + seg_len
    return None


def content_digest(data: bytes) -> str:
    """What makes two files copies of one photo (`data check` reports them; `data split` keeps them together)."""
    return hashlib.sha1(data).hexdigest()


def content_digests(paths: Iterable[Path], workers: int | None = None, progress: bool = True) -> dict[Path, str]:
    """Path -> content digest of each readable file (an unreadable one is left out: `data check` names it)."""
    def one(path: Path) -> tuple[Path, str]:
        try:
            return path, content_digest(path.read_bytes())
        except OSError:
            return path, ""

    paths = sorted(set(paths))
    workers = workers or max(4, 2 * (os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        pairs = list(tracked(pool.map(one, paths, chunksize=64), len(paths), "digest", "file", show=progress))
    return {p: d for p, d in pairs if d}


def inspect_image(rec: Record) -> ImageInfo:
    f, line = str(rec.path), rec.line
    info = ImageInfo(rec, ok=False)
    if not rec.path.exists():
        info.problems.append(Problem(f, line, "missing", "file does not exist"))
        return info
    if not rec.path.is_file():
        info.problems.append(Problem(f, line, "not_a_file", "a folder or special file, not an image"))
        return info
    try:
        data = rec.path.read_bytes()
    except OSError as e:
        info.problems.append(Problem(f, line, "unreadable", f"cannot read ({e.strerror or e})"))
        return info
    if not data:
        info.problems.append(Problem(f, line, "empty", "file is 0 bytes"))
        return info
    info.digest = content_digest(data)
    try:
        rgb = decode_bytes(data, f)
    except ImageDecodeError as e:
        kind = "truncated" if "truncated" in str(e) else "corrupt"
        info.problems.append(Problem(f, line, kind, str(e).split(": ", 1)[-1]))
        return info
    info.height, info.width = rgb.shape[:2]
    if rec.box is not None:
        x0, y0, x1, y1 = rec.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if not (0 <= cx < info.width and 0 <= cy < info.height):
            info.problems.append(Problem(f, line, "bad_box", f"face box centre ({cx:g}, {cy:g}) lies outside the "
                                                             f"{info.width}x{info.height} image"))
            return info
    mode = _mode_note(data)
    if mode:
        info.problems.append(Problem(f, line, "mode", f"{mode}; readable after conversion to RGB", "warning"))
    info.ok = True
    return info


def _mode_note(data: bytes) -> str:
    if data[:2] == b"\xff\xd8":
        comps = jpeg_components(data)
        return {1: "grayscale JPEG", 4: "CMYK JPEG"}.get(comps or 3, "")
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return ""
    notes = []
    if raw.dtype == np.uint16:
        notes.append("16-bit")
    if raw.ndim == 2 or raw.shape[2] == 1:
        notes.append("grayscale")
    elif raw.shape[2] == 4:
        notes.append("RGBA (alpha dropped)")
    return " ".join(notes) + (" image" if notes else "")


def check_dataset(ds: Dataset, workers: int | None = None, progress: bool = True) -> CheckResult:
    workers = workers or max(4, 2 * (os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        infos = list(tracked(pool.map(inspect_image, ds.records, chunksize=64), len(ds.records), "check", "img",
                            show=progress))
    problems = list(ds.problems)
    for info in infos:
        problems.extend(info.problems)
    by_digest: dict[str, list[ImageInfo]] = defaultdict(list)
    for info in infos:
        if info.digest and all(i.record.path != info.record.path for i in by_digest[info.digest]):
            by_digest[info.digest].append(info)  # a group photo's rows (one per face) are one file, not copies
    for group in by_digest.values():
        if len(group) < 2:
            continue
        first = group[0].record
        splits = sorted({str(i.record.split) for i in group})
        for dup in group[1:]:
            r = dup.record
            notes = [f"same bytes as {first.path.name}"]
            if r.age != first.age:
                notes.append(f"labelled {r.age:g} there {first.age:g}")
            if len(splits) > 1:
                notes.append(f"across splits {'/'.join(splits)}: evaluation sees a training image")
            # A warning, not an error: each file is a usable record; the set needs a look.
            problems.append(Problem(str(r.path), r.line, "duplicate_content", "; ".join(notes), "warning"))
    listed = Counter(i.record.listing for i in infos)  # one image listed twice (which label holds?): neither is used
    for info in infos:
        if listed[info.record.listing] > 1:
            info.ok = False
    return CheckResult(ds, infos, problems)
