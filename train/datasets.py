"""Dataset readers: one folder (or CSV) in, a list of Records plus the Problems met.

Formats (`--format auto` picks one by what the folder holds):
  appa      labels.csv (file_name,real_age) + final_files/   (the brief's data set)
  appa-orig gt_avg_{train,valid,test}.csv + train/ valid/ test/ (APPA-REAL as published)
  utkface   {age}_{gender}_{race}_{datetime}.jpg.chip.jpg, in DIR or DIR/images/
  csv       a CSV with columns path,age[,split][,person][,face_x,face_y,face_w,face_h]; a folder
            whose one CSV has path and age is read by it, however its images are named

A CSV may mark the labelled person's face (`face_x,face_y,face_w,face_h`: the box's top-left
corner and size in pixels): in a photo of several people the detector then crops that face,
not the largest (`edge.detect.labelled_face`). Boxes drawn tight, loose or head-and-shoulders
all work; rows without a box (empty cells) take the largest face as before.

A reader never stops at the first bad row: a row it cannot use becomes a Problem
(file, line, kind, detail) and reading goes on. Only a data set that cannot be
read at all raises DatasetError.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from agegate.edge.contracts import IMAGE_EXTS
from agegate.edge.errors import DatasetError, UsageError

FORMATS = ("auto", "appa", "appa-orig", "utkface", "csv")
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
AGE_MIN, AGE_MAX = 0.0, 120.0
_BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")
MIN_BOX = 8  # px: no age can be read from a smaller face; a smaller box is usually given in shares of the image
_CSV_COLUMNS = ("path", "age", "split", "person") + _BOX_COLUMNS
_UTK = re.compile(r"^(?P<age>\d+)_(?P<gender>[01])_(?:(?P<race>[0-4])_)?(?P<dt>\d+)")


@dataclass(frozen=True)
class Record:
    path: Path
    age: float
    person: str | None = None
    split: str | None = None
    source: str = ""  # the label file this record came from ('' for file names)
    line: int | None = None  # 1-based line in `source`
    attrs: tuple[tuple[str, str], ...] = ()  # e.g. (("gender","1"),("race","2")) for UTKFace
    box: tuple[float, float, float, float] | None = None  # the labelled face: x0, y0, x1, y1 in pixels

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def listing(self) -> tuple:
        """What a row lists: a file and, in a group photo, one face in it. Two rows listing the same are one
        image listed twice (`data check` uses neither)."""
        return self.path, self.box

    @property
    def face_label(self):
        """The labelled face as the detector's FaceBox (`box_crop(label=...)`), None when not marked."""
        from agegate.edge.detect import FaceBox

        return None if self.box is None else FaceBox(*self.box)

    def attr(self, key: str) -> str | None:
        return dict(self.attrs).get(key)


@dataclass
class Problem:
    file: str
    line: int | None
    kind: str
    detail: str
    severity: str = "error"  # error: the record is unusable; warning: usable, but look

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "kind": self.kind, "detail": self.detail,
                "severity": self.severity}


#: Problems whose row the readers leave out (no record made, or none in any split); the other kinds keep it.
UNREAD_KINDS = frozenset({"bad_age", "bad_name", "bad_split", "bad_path", "bad_box"})


@dataclass
class Dataset:
    root: Path
    format: str
    records: list[Record]
    problems: list[Problem] = field(default_factory=list)
    split_file: Path | None = None

    def split(self, name: str | None) -> list[Record]:
        if name is None:
            return list(self.records)
        return [r for r in self.records if r.split == name]

    def unread_rows(self) -> str:
        """'N row(s) ... not read (the first ...)': the label rows left out for an error (a bad age, split or
        box), for a command to say before it measures or trains without them; '' when every row was read."""
        unread = [p for p in self.problems if p.kind in UNREAD_KINDS]
        if not unread:
            return ""
        shown = "; ".join(f"{Path(p.file).name}{f' line {p.line}' if p.line else ''}: {p.detail}" for p in unread[:3])
        more = f"; {len(unread) - 3} more" if len(unread) > 3 else ""
        return (f"{len(unread)} label row(s) not read and left out of every split ({shown}{more}): fix "
                f"them, or see them all with `agegate data check`")

    def fingerprint(self) -> str:
        """Hash of the sorted (file, age, split[, face box]) list: names the exact labelled data a model saw.
        A record without a box hashes as before boxes existed, so older fingerprints still match."""
        h = hashlib.sha256()
        for r in sorted(self.records, key=lambda r: str(r.path)):
            box = "" if r.box is None else "\t" + ",".join(f"{v:g}" for v in r.box)
            h.update(f"{r.path.name}\t{r.age:g}\t{r.split}{box}\n".encode())
        return h.hexdigest()[:16]


def detect_format(root: Path) -> str:
    if root.is_file() and root.suffix.lower() == ".csv":
        return "csv"
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder or CSV file")
    if (root / "labels.csv").exists() and (root / "final_files").is_dir():
        return "appa"
    if any((root / f"gt_avg_{s}.csv").exists() for s in ("train", "valid", "test")):
        return "appa-orig"
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) == 1 and _has_columns(csvs[0], ("path", "age")):
        return "csv"  # a labels CSV beside the images holds the ages, even of files named the UTKFace way
    img_dir = root / "images" if (root / "images").is_dir() else root
    for p in img_dir.iterdir():
        if p.name.endswith(".chip.jpg") or _UTK.match(p.name):
            return "utkface"
    if len(csvs) == 1:
        return "csv"
    raise DatasetError(
        f"{root}: cannot tell the data set format. Expected labels.csv + final_files/ (appa), "
        f"gt_avg_*.csv (appa-orig), UTKFace file names, or one CSV with path,age; pass --format."
    )


def check_distinct(paths: list[str]) -> None:
    """Refuse a data set given twice (as `--data`, however written): it would count twice in an overall figure
    and weigh twice in training, unsaid."""
    seen: dict[Path, str] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise UsageError(f"the data set {p} is given twice (also as {seen[key]}); give each once "
                             f"(`train --data-weight` weighs one)")
        seen[key] = p


def read_dataset(path: str | Path, fmt: str = "auto", split_file: str | Path | None = None,
                 target: str = "real") -> Dataset:
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: no such folder or file")
    fmt = detect_format(root) if fmt == "auto" else fmt
    readers = {"appa": _read_appa, "appa-orig": _read_appa_orig, "utkface": _read_utkface, "csv": _read_csv}
    if fmt not in readers:
        raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _check_layout(root, fmt)
    problems: list[Problem] = []
    if fmt == "appa-orig":
        records = _read_appa_orig(root, problems, target)
    else:
        records = readers[fmt](root, problems)
    if split_file is None and fmt == "utkface" and (root / "split.csv").exists():
        split_file = root / "split.csv"
    if split_file is not None:
        records = _apply_split_file(records, Path(split_file), problems)
    _check_duplicate_names(records, problems)
    _check_overlapping_boxes(records, problems)
    base = root if root.is_dir() else root.parent
    return Dataset(root=base, format=fmt, records=records, problems=problems,
                   split_file=Path(split_file) if split_file else None)


#: What each layout needs on disk (the readers assume it): named when a --format given by hand is not there.
_LAYOUTS = {
    "appa": ("labels.csv (file_name,real_age) beside final_files/",
             lambda r: (r / "labels.csv").is_file() and (r / "final_files").is_dir()),
    "appa-orig": ("gt_avg_train.csv, gt_avg_valid.csv or gt_avg_test.csv",
                  lambda r: any((r / f"gt_avg_{s}.csv").is_file() for s in ("train", "valid", "test"))),
    "utkface": ("a folder of UTKFace-named images (or one with images/ inside)", lambda r: r.is_dir()),
    "csv": ("a CSV with path,age: the file, or a folder holding it", lambda r: r.is_file() or any(r.glob("*.csv"))),
}


def _check_layout(root: Path, fmt: str) -> None:
    need, present = _LAYOUTS[fmt]
    if not present(root):
        raise DatasetError(f"{root}: not the {fmt} layout, which needs {need}; pass the --format this data set is "
                           f"in, or leave it out (auto)")


def _parse_age(raw: str, file: str, line: int, problems: list[Problem]) -> float | None:
    try:
        age = float(str(raw).strip())
    except ValueError:
        problems.append(Problem(file, line, "bad_age", f"age {raw!r} is not a number"))
        return None
    if not AGE_MIN <= age <= AGE_MAX:
        problems.append(Problem(file, line, "bad_age", f"age {age:g} outside {AGE_MIN:g}..{AGE_MAX:g}"))
        return None
    return age


def _has_columns(path: Path, columns: tuple[str, ...]) -> bool:
    """Whether a CSV holds these columns (False when it cannot be read: the reader chosen later says why)."""
    try:
        _open_csv(path, columns)
    except DatasetError:
        return False
    return True


def _open_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(line number, row)]). Raises DatasetError when required columns are missing."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read label file ({e})") from e
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{path}: line 1: missing column(s) {', '.join(missing)}; header is {header}")
    rows = [(i + 2, {k.strip(): (v or "") for k, v in row.items() if k}) for i, row in enumerate(reader)]
    return header, rows


def _read_appa(root: Path, problems: list[Problem]) -> list[Record]:
    labels = root / "labels.csv"
    img_dir = root / "final_files"
    if not img_dir.is_dir():
        raise DatasetError(f"{root}: labels.csv found but no final_files/ folder")
    _, rows = _open_csv(labels, ("file_name", "real_age"))
    out = []
    for line, row in rows:
        age = _parse_age(row["real_age"], str(labels), line, problems)
        if age is not None:
            out.append(Record(img_dir / row["file_name"].strip(), age, source=str(labels), line=line))
    return out


def _read_appa_orig(root: Path, problems: list[Problem], target: str = "real") -> list[Record]:
    col = {"real": "real_age", "apparent": "apparent_age_avg"}.get(target)
    if col is None:
        raise DatasetError(f"target must be 'real' or 'apparent', not {target!r}")
    out = []
    for part in ("train", "valid", "test"):
        labels = root / f"gt_avg_{part}.csv"
        if not labels.exists():
            continue
        _, rows = _open_csv(labels, ("file_name", col))
        for line, row in rows:
            age = _parse_age(row[col], str(labels), line, problems)
            if age is None:
                continue
            img = root / part / row["file_name"].strip()
            face = img.with_name(img.name + "_face.jpg")
            out.append(Record(face if face.exists() else img, age, split=SPLIT_ALIASES[part],
                              source=str(labels), line=line))
    return out


def _read_utkface(root: Path, problems: list[Problem]) -> list[Record]:
    img_dir = root / "images" if (root / "images").is_dir() else root
    out = []
    for p in sorted(img_dir.iterdir()):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS:
            continue
        m = _UTK.match(p.name)
        if not m:
            problems.append(Problem(str(p), None, "bad_name", "file name does not start with {age}_{gender}_"))
            continue
        age = _parse_age(m["age"], str(p), 0, problems)
        if age is None:
            problems[-1].line = None
            continue
        attrs = (("gender", m["gender"]),) + ((("race", m["race"]),) if m["race"] else ())
        out.append(Record(p, age, attrs=attrs))
    return out


def _read_csv(root: Path, problems: list[Problem]) -> list[Record]:
    path = root if root.is_file() else next(iter(sorted(root.glob("*.csv"))))
    header, rows = _open_csv(path, ("path", "age"))
    out = []
    for line, row in rows:
        age = _parse_age(row["age"], str(path), line, problems)
        if age is None:
            continue
        split = row.get("split", "").strip() or None
        if split is not None:
            if split.lower() not in SPLIT_ALIASES:
                problems.append(Problem(str(path), line, "bad_split", f"unknown split {split!r}; use train/val/test"))
                continue
            split = SPLIT_ALIASES[split.lower()]
        raw = row["path"].strip()
        if not raw:
            problems.append(Problem(str(path), line, "bad_path", "empty path"))
            continue
        p = Path(raw)
        box = _parse_box(row, str(path), line, problems)
        if box is False:
            continue
        # Other columns (AAF's gender, say) travel as attributes: eval reports MAE per group.
        attrs = tuple((k, v.strip()) for k, v in row.items() if k not in _CSV_COLUMNS and v.strip())
        out.append(Record(p if p.is_absolute() else path.parent / p, age, person=row.get("person") or None,
                          split=split, source=str(path), line=line, attrs=attrs, box=box))
    return out


def _parse_box(row: dict, file: str, line: int, problems: list[Problem]):
    """The row's face box as (x0, y0, x1, y1); None when the row marks none; False (and a Problem) when
    it marks one badly. Whether the box lies in the image is checked where the image is read."""
    cells = [row.get(c, "").strip() for c in _BOX_COLUMNS]
    if not any(cells):
        return None
    if not all(cells):
        missing = ", ".join(c for c, v in zip(_BOX_COLUMNS, cells) if not v)
        problems.append(Problem(file, line, "bad_box", f"face box incomplete: {missing} empty; give all four "
                                                       f"({','.join(_BOX_COLUMNS)}) or none"))
        return False
    try:
        x, y, w, h = (float(v) for v in cells)
    except ValueError:
        problems.append(Problem(file, line, "bad_box", f"face box {','.join(cells)} is not four numbers"))
        return False
    # A corner left of or above the image is allowed (a face cut by the photo's edge, boxed whole); where
    # the box lies against the image is checked where the image is read (its centre must be inside).
    if not (w > 0 and h > 0) or not all(map(math.isfinite, (x, y, w, h))):
        problems.append(Problem(file, line, "bad_box", f"face box x={x:g} y={y:g} w={w:g} h={h:g}: give finite "
                                                       "pixels and a size > 0"))
        return False
    if w < MIN_BOX or h < MIN_BOX:
        problems.append(Problem(file, line, "bad_box", f"face box {w:g}x{h:g} is under {MIN_BOX} px: the columns are "
                                                       "pixels (a box given as shares of the image, 0-1, must be "
                                                       "multiplied by its width and height)"))
        return False
    return (x, y, x + w, y + h)


#: Two rows of one photo whose face boxes overlap this much (IoU) likely label one face twice.
SAME_FACE_IOU = 0.5


def _check_overlapping_boxes(records: list[Record], problems: list[Problem]) -> None:
    """A warning for each row whose face box mostly covers another row's in the same photo: one face
    labelled twice (and perhaps with two ages), or a box drawn on the wrong person."""
    from agegate.edge.detect import iou

    by_file: dict[Path, list[Record]] = {}
    for r in records:
        if r.box is not None:
            by_file.setdefault(r.path, []).append(r)
    for rows in by_file.values():
        for i, r in enumerate(rows):
            for first in rows[:i]:
                overlap = iou(first.box, r.box)
                if first.box != r.box and overlap > SAME_FACE_IOU:
                    problems.append(Problem(str(r.path), r.line, "box_overlap", f"face box overlaps line "
                                            f"{first.line}'s (IoU {overlap:.2f}): one face labelled twice?", "warning"))
                    break  # one warning per row: the first row it overlaps


def check_boxes_reach_a_detector(records, detects: bool, fix: str) -> None:
    """A labelled face box chooses a face only through the box's detector; where images are read whole
    (a chip model, `--crop none`) it would silently be the photo's centre instead. Raises UsageError."""
    boxed = sum(r.box is not None for r in records)
    if boxed and not detects:
        raise UsageError(f"{boxed} of {len(records)} images mark a labelled face box, which chooses a face only "
                         f"through the box's detector, and the images here are read whole: {fix}")


def _apply_split_file(records: list[Record], split_file: Path, problems: list[Problem]) -> list[Record]:
    _, rows = _open_csv(split_file, ("file_name", "split"))
    by_name: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for line, row in rows:
        s = row["split"].strip().lower()
        if s not in SPLIT_ALIASES:
            problems.append(Problem(str(split_file), line, "bad_split", f"unknown split {row['split']!r}; use train/val/test"))
            continue
        by_name[row["file_name"].strip()] = SPLIT_ALIASES[s]
        line_of[row["file_name"].strip()] = line
    out = []
    used: set[str] = set()
    for r in records:
        key = r.path.name if r.path.name in by_name else str(r.path)
        s = by_name.get(key)
        if s:
            used.add(key)
        out.append(replace(r, split=s) if s else r)
    unassigned = sum(1 for r in out if r.split is None)
    if unassigned:
        problems.append(Problem(str(split_file), None, "not_in_split",
                                f"{unassigned} image(s) are not listed in the split file", "warning"))
    stray = [name for name in by_name if name not in used]
    if stray:  # a split file for another set (or renamed images) leaves rows that name nothing here
        problems.append(Problem(str(split_file), line_of[stray[0]], "not_in_data",
                                f"{len(stray)} row(s) name no image of this data set (the first: {stray[0]}); a split "
                                f"file of another set?", "warning"))
    return out


def _check_duplicate_names(records: list[Record], problems: list[Problem]) -> None:
    """A file listed twice is an error, unless each row marks a different face in it (a group photo)."""
    seen: dict[tuple, Record] = {}
    for r in records:
        if r.listing in seen:
            first = seen[r.listing]
            problems.append(Problem(str(r.path), r.line, "duplicate_name",
                                    f"listed again (first at {Path(first.source).name or 'folder'} line {first.line})"
                                    + ("" if r.box is None else " with the same face box")))
        else:
            seen[r.listing] = r
