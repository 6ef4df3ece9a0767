"""Several data sets in one training run: each source with its split, weight and fingerprint.

`agegate train --data A --data B` reads every source with its own reader. A source that
brings no train/val split (a plain folder of labelled photos) gets a seeded split made here
(`data split`'s function, 80/10/10 stratified by band, a person's photos and byte-identical
copies kept together) and the run says so and writes it to `OUT/split-<n>-<name>.csv`, so
the same images can be held out later.

Sample weights: `--data-weight` scales a whole source; `--age-prior balanced` weighs each
training image by the inverse frequency of its 5-year age bin over all sources, so one
set's age mix (AAF's many children, UTKFace's many 25-35s) does not pull the estimates.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agegate.edge.errors import DatasetError, UsageError

from .check import content_digests
from .datasets import Dataset, Record, check_distinct, read_dataset
from .split import make_split, write_split

log = logging.getLogger("agegate.train")

AGE_PRIORS = ("none", "balanced")
PRIOR_BIN_YEARS = 5
#: The balanced prior's weights are clipped to this range (relative to the mean), so a bin of
#: three 95-year-olds cannot dominate a batch.
PRIOR_CLIP = (0.25, 4.0)


@dataclass
class Source:
    path: str
    weight: float
    dataset: Dataset
    train: list[Record]
    val: list[Record]
    split_origin: str  # "the data set's own" | "made by this run (seeded, person- and copy-aware, ...): FILE"

    @property
    def name(self) -> str:
        return Path(self.path).name or str(self.path)

    def summary(self) -> dict:
        return {"path": str(self.path), "format": self.dataset.format, "fingerprint": self.dataset.fingerprint(),
                "weight": self.weight, "split": self.split_origin,
                "split_sizes": {"train": len(self.train), "val": len(self.val)}}


def load_sources(paths: list[str], weights: list[float], fmt: str, split_file: str | None, val_split: str,
                 seed: int, out: Path) -> list[Source]:
    if not paths:
        raise UsageError("--data is required (give it once per data set)")
    check_distinct(paths)
    if weights and len(weights) != len(paths):
        raise UsageError(f"--data-weight given {len(weights)} time(s) for {len(paths)} --data source(s); "
                         f"give one weight per source, in the same order, or none")
    if split_file and len(paths) > 1:
        raise UsageError("--split-file applies to one data set; with several --data, give each its own split "
                         "(a split column or split.csv) or let the run make one")
    sources = []
    for k, path in enumerate(paths):
        w = float(weights[k]) if weights else 1.0
        if w <= 0:
            raise UsageError(f"--data-weight {w:g} for {path}: weights must be positive")
        ds = read_dataset(path, fmt, split_file)
        if not ds.records:
            raise DatasetError(f"{path}: no labelled images found ({len(ds.problems)} problem(s); "
                               f"run `agegate data check {path}`)")
        if unread := ds.unread_rows():  # trained without them: say which, so none is left out unseen
            log.warning("%s: %s", path, unread)
        origin = "the data set's own"
        made_here = not any(r.split == "train" for r in ds.records)
        if made_here:
            assignment = make_split(ds.records, 0.1, 0.1, seed,
                                    content_digests((r.path for r in ds.records), progress=False))
            split_csv = out / f"split-{k}-{Path(path).stem or 'data'}.csv"
            out.mkdir(parents=True, exist_ok=True)
            write_split(assignment, ds.root, split_csv)
            ds = Dataset(ds.root, ds.format, [replace(r, split=assignment[r.path]) for r in ds.records], ds.problems,
                         split_csv)
            origin = f"made by this run (seeded {seed}, person- and copy-aware, 80/10/10 by band): {split_csv.name}"
        train, val = ds.split("train"), ds.split(val_split)
        if not val:
            raise DatasetError(f"{path}: no images in split '{val_split}'; the best model is chosen on it. " + (
                f"The split this run made of its {len(ds.records)} labelled image(s) left none there (10 % of each "
                f"age band): too few to train on; give more images, or a split column that names some val images."
                if made_here else "Make a split with `agegate data split`."))
        sources.append(Source(path, w, ds, train, val, origin))
    return sources


def combined_fingerprint(sources: list[Source]) -> str:
    if len(sources) == 1:
        return sources[0].dataset.fingerprint()
    h = hashlib.sha256("\n".join(s.dataset.fingerprint() for s in sources).encode())
    return h.hexdigest()[:16]


def record_weights(ages: np.ndarray, source_weight: np.ndarray, prior: str) -> np.ndarray:
    """Per-image loss weights (mean 1): the source's weight times the age prior's."""
    if prior not in AGE_PRIORS:
        raise UsageError(f"--age-prior must be one of {', '.join(AGE_PRIORS)}, not {prior!r}")
    w = np.asarray(source_weight, np.float64).copy()
    if prior == "balanced":
        bins = (np.asarray(ages) // PRIOR_BIN_YEARS).astype(int)
        counts = np.bincount(bins)
        inv = 1.0 / counts[bins]
        inv = np.clip(inv / inv.mean(), *PRIOR_CLIP)
        w *= inv
    return (w / w.mean()).astype(np.float32)
