"""Images a person checked and found mislabelled: one list format for `agegate calibrate --exclude` (val) and
`agegate train --exclude` (train).

A wrong label costs most where a loss or a threshold listens hardest to the few faces that disagree with the
model: among the minors that set the operating point, one adult labelled 1 year old sets it for every adult
(calibrate); in training, the Challenge-25 term (`--c25-weight`) pushes such a face, at its full weight every
epoch, towards "under 25" (MODEL_HISTORY.md, "Not the reading, and not overfitted").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agegate.edge.errors import UsageError


@dataclass(frozen=True)
class LabelExclusion:
    """An image a person checked and found mislabelled (e.g. an adult labelled 1 year old), left out of
    calibration or training. `line` names one row of a group photo (its line in the label CSV); None: the file's only row."""

    path: str  # as written in the list: the image's path, or its tail (e.g. utkface/images/x.jpg)
    reason: str
    line: int | None = None

    def matches(self, path: str, line: int | None = None) -> bool:
        same_file = path == self.path or path.replace("\\", "/").endswith("/" + self.path.lstrip("/"))
        return same_file and (self.line is None or self.line == line)

    def to_dict(self) -> dict[str, Any]:
        """As recorded with the operating point (`excluded` in the metadata)."""
        return {"path": self.path, "reason": self.reason} | ({} if self.line is None else {"line": self.line})


#: `PATH:LINE` names one row of a group photo (the CSV's line); a path that merely contains a colon is
#: read whole.
_ROW = re.compile(r"^(?P<path>.+):(?P<line>[0-9]+)$")


def read_label_exclusions(path: Path, what: str = "mislabelled images",
                          note: str = "why its label is wrong", example: str = "an adult labelled 1 year old"
                          ) -> list[LabelExclusion]:
    """A list of mislabelled images: one per line, the image's path (or its tail; `PATH:LINE` for one face
    of a group photo) then why, after spaces; blank lines and lines starting with # are skipped.

    Other lists of photos a person looked at (`what`), each with what was seen (`note`, e.g. `example`), are
    written and read the same way (eye_light_photos.py's photos seen in sunglasses)."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the list of {what} ({e})") from e
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise UsageError(f"{path}:{n}: give the image's path, then {note} "
                             f"(e.g. 'utkface/images/x.jpg  {example}')")
        row = _ROW.match(parts[0])
        where = (row["path"], int(row["line"])) if row else (parts[0], None)
        out.append(LabelExclusion(where[0], parts[1].strip(), where[1]))
    return out


def match_exclusions(exclusions: list[LabelExclusion], keys: list[tuple[str, int | None]],
                     source: str = "the list", split: str = "the calibration split") -> set[tuple[str, int | None]]:
    """The (file, label line) keys among `keys` that the exclusions name; each exclusion must name one, or it
    is a typo (or an image of another split) and calibrating or training without it would not do what was asked."""
    found: set[tuple[str, int | None]] = set()
    for e in exclusions:
        hit = [k for k in keys if e.matches(*k)]
        named = e.path if e.line is None else f"{e.path}:{e.line}"
        if len(hit) > 1 and len({path for path, _ in hit}) == 1:  # one group photo, a row per face
            raise UsageError(f"{source}: {named!r} names {len(hit)} rows of one group photo (lines "
                             f"{', '.join(str(line) for _, line in hit)}); write PATH:LINE for the face whose "
                             f"label is wrong")
        if len(hit) != 1:
            raise UsageError(f"{source}: {named!r} names {'no image' if not hit else f'{len(hit)} images'} of "
                             f"{split}; give a path (or a longer tail of it) that names one")
        found.add(hit[0])
    return found
