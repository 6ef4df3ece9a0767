"""Challenge 25 as a calibrated risk: the operating point a distribution model carries, and the curve it
is chosen from.

A distribution model (age_head.py) gives each buyer P(under 25). The box asks for ID when that risk is
above the model's operating point. The operating point is chosen on data (`agegate calibrate`, on val)
to meet a target share of minors decided `ok`, and travels in the model's metadata with what it costs
(the share of 25+ buyers asked for ID), so QA can refuse a model that misses its target and
`device doctor` can show it. Pure functions of arrays: no I/O here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .contracts import CHALLENGE_AGE, MINOR_AGE
from .errors import ModelError

#: The defaults of issue 17: at most 0.5 % of minors decided `ok` per buyer (replay) and 1 % per image.
DEFAULT_MAX_MINORS_OK_IMAGE = 0.01
DEFAULT_MAX_MINORS_OK_BUYER = 0.005


@dataclass(frozen=True)
class OperatingPoint:
    """Ask for ID when P(under 25) > max_risk. `targets` and `measured` say what it was chosen for and
    what it gave on `chosen_on` (data set paths and split)."""

    max_risk: float
    target_minors_ok_image: float = DEFAULT_MAX_MINORS_OK_IMAGE
    target_minors_ok_buyer: float | None = DEFAULT_MAX_MINORS_OK_BUYER
    measured: dict[str, Any] | None = None  # per_image / per_buyer: minors_ok, adults_asked, n_minors, n_adults
    chosen_on: str = ""
    looser_than_default: bool = False  # an operator asked for a looser target (--allow-looser), recorded

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_risk <= 1.0:
            raise ModelError(f"operating point max_risk must lie in [0, 1], not {self.max_risk}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "OperatingPoint | None":
        if not d:
            return None
        try:
            return cls(**d)
        except TypeError as e:
            raise ModelError(f"model metadata has an unreadable operating_point ({e}); upgrade agegate") from e

    def describe(self) -> str:
        s = f"ID check when P(under {CHALLENGE_AGE:g}) > {self.max_risk:.3f}"
        for where in ("per_image", "per_buyer"):
            m = (self.measured or {}).get(where)
            if m:
                s += (f"; {where.replace('_', ' ')}: minors ok {100 * m['minors_ok']:.2f} %, "
                      f"25+ asked {100 * m['adults_asked']:.1f} %")
        return s + (f" (chosen on {self.chosen_on})" if self.chosen_on else "")


def rates(risk: np.ndarray, ages: np.ndarray, max_risk: float) -> dict[str, Any]:
    """What a threshold does: share of minors (< 18) decided ok (risk <= max_risk) and of 25+ asked for ID."""
    risk, ages = np.asarray(risk, np.float64), np.asarray(ages, np.float64)
    minors, adults = risk[ages < MINOR_AGE], risk[ages >= CHALLENGE_AGE]
    return {"minors_ok": float(np.mean(minors <= max_risk)) if len(minors) else None,
            "adults_asked": float(np.mean(adults > max_risk)) if len(adults) else None,
            "n_minors": int(len(minors)), "n_adults": int(len(adults))}


def choose_max_risk(risk: np.ndarray, ages: np.ndarray, max_minors_ok: float) -> float:
    """The largest threshold (fewest adults asked) whose share of minors decided ok is <= the target.

    Minors with risk <= t pass; allowing k = floor(target * n) of them, t sits just below the
    (k+1)-th smallest minor risk. With no minors in the data there is nothing to choose on: an error.
    """
    risk, ages = np.asarray(risk, np.float64), np.asarray(ages, np.float64)
    minors = np.sort(risk[ages < MINOR_AGE])
    if not len(minors):
        raise ModelError("no minors (under 18) in the calibration data: the operating point cannot be chosen")
    k = int(np.floor(max_minors_ok * len(minors)))
    if k >= len(minors):
        return 1.0
    t = np.nextafter(minors[k], -np.inf)  # the (k+1)-th smallest minor risk must stay above t
    return float(max(0.0, t))


def tradeoff_curve(risk: np.ndarray, ages: np.ndarray, points: int = 101) -> list[dict[str, float]]:
    """Minors decided ok against 25+ asked for ID, over thresholds (NIST's Challenge-25 plot)."""
    risk, ages = np.asarray(risk, np.float64), np.asarray(ages, np.float64)
    qs = np.unique(np.concatenate([np.linspace(0, 1, points), np.quantile(risk, np.linspace(0, 1, points))]))
    out = []
    for t in qs:
        r = rates(risk, ages, float(t))
        out.append({"max_risk": round(float(t), 6), "minors_ok": r["minors_ok"], "adults_asked": r["adults_asked"]})
    return out
