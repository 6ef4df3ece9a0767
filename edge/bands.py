"""Age bands, the same everywhere: reports, eval JSON, events, marketing stats."""
from __future__ import annotations

import numpy as np

#: (label, lower bound inclusive, upper bound exclusive)
BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-12", 0, 13),
    ("13-17", 13, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, float("inf")),
)
BAND_LABELS: tuple[str, ...] = tuple(b[0] for b in BANDS)


def band_of(age: float) -> str:
    """The band label of one age (fractional ages fall by their floor: 17.9 is a minor)."""
    for label, lo, hi in BANDS:
        if lo <= age < hi:
            return label
    return BANDS[0][0] if age < 0 else BANDS[-1][0]


def band_index(ages: np.ndarray) -> np.ndarray:
    """Vectorised band index (0..7) for an array of ages."""
    edges = np.array([b[1] for b in BANDS[1:]], dtype=np.float64)
    return np.searchsorted(edges, np.asarray(ages, dtype=np.float64), side="right")


def band_labels(ages: np.ndarray) -> list[str]:
    """The band label of each age in an array."""
    return [BAND_LABELS[i] for i in band_index(ages)]
