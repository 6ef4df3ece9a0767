"""`agegate data split`: a deterministic split manifest, stratified by age band.

Records of one person (when the reader knows a person id) always land in the
same split, so a face never appears on both sides of an evaluation; so do the rows
of one photo (a group photo has a row per labelled face), files with the same bytes
(one photo saved twice: All-Age-Faces holds 188 such groups, some labelled with two
ages), and whoever they link.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from agegate.edge.bands import BAND_LABELS, band_of
from agegate.edge.errors import UsageError

from .datasets import Record


def _group_of(records: list[Record], digests: Mapping[Path, str] | None = None) -> dict[int, str]:
    """Each record's group: the records of one person, the rows of one file (a group photo has a row per
    labelled face) and files with the same content digest are one group, and so transitively (A with B in
    one photo, B alone in another: all three rows together). A group is named by its smallest person id,
    else its smallest file, as before group photos and copies counted, so a data set without them splits
    exactly as it did."""
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def join(a: str, b: str) -> None:
        a, b = root(a), root(b)
        if a != b:
            parent[b] = a

    for r in records:
        if r.person:
            join(r.person, f"file:{r.path}")
        if digests and digests.get(r.path):
            join(f"bytes:{digests[r.path]}", f"file:{r.path}")
    persons: dict[str, str] = {}
    files: dict[str, str] = {}
    for r in records:
        top = root(f"file:{r.path}")
        files[top] = min(files.get(top, f"file:{r.path}"), f"file:{r.path}")
        if r.person:
            persons[top] = min(persons.get(top, r.person), r.person)
    return {id(r): persons.get(root(f"file:{r.path}"), files[root(f"file:{r.path}")]) for r in records}


def make_split(records: list[Record], val: float = 0.1, test: float = 0.1, seed: int = 0,
               digests: Mapping[Path, str] | None = None) -> dict[Path, str]:
    """Each record's path -> train/val/test. `digests` (path -> content digest, `check.content_digests`)
    keeps byte-identical files together; without it only persons and group photos are."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UsageError("--val and --test must be fractions with val + test < 1")
    # Group by person (or by file when no person id) and by content, then stratify groups by band.
    group_of = _group_of(records, digests)
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[group_of[id(r)]].append(r)
    by_band: dict[str, list[str]] = defaultdict(list)
    for key, recs in groups.items():
        by_band[band_of(float(np.median([r.age for r in recs])))].append(key)
    rng = np.random.default_rng(seed)
    out: dict[Path, str] = {}
    for band in BAND_LABELS:
        keys = sorted(by_band.get(band, []))
        order = rng.permutation(len(keys))
        n_test = int(round(test * len(keys)))
        n_val = int(round(val * len(keys)))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            for r in groups[keys[i]]:
                out[r.path] = split
    return out


def write_split(assignment: dict[Path, str], root: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "split"])
        for path in sorted(assignment):
            try:
                name = str(path.relative_to(root))
            except ValueError:
                name = str(path)
            # The readers match split files by base name first, so keep names short where unique.
            w.writerow([path.name if path.parent.name in ("images", "final_files") else name, assignment[path]])
