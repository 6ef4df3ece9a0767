"""What a model's output means: a point in years, or a distribution over ages.

The one place that turns a model's raw output into ages, so training's validation, `eval`, QA and the
box cannot read it differently:

- `regression`: one number, the age in years (the first shipped model).
- `distribution`: one logit per year of age, `min_age` .. `min_age + n_bins - 1`. The box turns the
  logits into probabilities with the model's `temperature` (fitted on val after training, so the
  intervals hold what they say), takes the expectation as the point estimate (MAE, analytics), and
  the mass under 25 as the Challenge-25 risk.

Logits rather than probabilities leave the graph: the softmax costs nothing in numpy, int8 logits keep
their resolution where probabilities would round the tails to zero, and a temperature can be applied
to them after conversion.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np

from .errors import ModelError


class HeadKind(str, Enum):
    REGRESSION = "regression"
    DISTRIBUTION = "distribution"


@dataclass(frozen=True)
class AgeHead:
    kind: HeadKind = HeadKind.REGRESSION
    min_age: int = 0
    n_bins: int = 1  # distribution: one bin per year; regression: 1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", HeadKind(self.kind))
        if self.kind is HeadKind.DISTRIBUTION and self.n_bins < 2:
            raise ModelError(f"a distribution head needs at least 2 bins, not {self.n_bins}")
        if not self.temperature > 0:
            raise ModelError(f"head temperature must be positive, not {self.temperature}")

    @classmethod
    def distribution(cls, min_age: int = 0, max_age: int = 100, temperature: float = 1.0) -> "AgeHead":
        return cls(HeadKind.DISTRIBUTION, int(min_age), int(max_age) - int(min_age) + 1, float(temperature))

    @property
    def is_distribution(self) -> bool:
        return self.kind is HeadKind.DISTRIBUTION

    @property
    def outputs(self) -> int:
        """Width of the model's output."""
        return self.n_bins

    @property
    def ages(self) -> np.ndarray:
        """The age (years) each bin stands for."""
        return np.arange(self.min_age, self.min_age + self.n_bins, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "AgeHead":
        if not d:
            return cls()
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ModelError(f"model metadata has an unknown head {d!r} ({e}); upgrade agegate") from e

    # --- raw output -> ages (pure functions of the output array) ------------------------------------------
    def probabilities(self, raw: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """(N, bins) logits -> (N, bins) probabilities at this head's temperature (or the one given)."""
        if not self.is_distribution:
            raise ModelError("a regression model gives no age distribution")
        z = np.asarray(raw, np.float64).reshape(-1, self.n_bins) / (temperature or self.temperature)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def point(self, raw: np.ndarray) -> np.ndarray:
        """(N, outputs) raw output -> (N,) ages in years: the number itself, or the distribution's mean
        at temperature 1. The L1 term of the training loss fits that mean; the calibrated temperature
        corrects the spread (intervals, risk), and applied here it moved val MAE by up to 0.2 years."""
        raw = np.asarray(raw, np.float64)
        if not self.is_distribution:
            return raw.reshape(-1)
        return self.probabilities(raw, 1.0) @ self.ages


def p_under(probs: np.ndarray, head: AgeHead, age: float) -> np.ndarray:
    """Probability that the true age is under `age` (whole years: the bins below it)."""
    p = np.asarray(probs, np.float64).reshape(-1, head.n_bins)
    return p[:, head.ages < age].sum(axis=1)


def interval(probs: np.ndarray, head: AgeHead, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central `level` interval (lo, hi) in whole years of each distribution: the smallest and largest
    bin ages whose cumulative mass lies in [(1-level)/2, (1+level)/2]. An integer label is inside when
    lo <= age <= hi."""
    p = np.asarray(probs, np.float64).reshape(-1, head.n_bins)
    cdf = np.cumsum(p, axis=1)
    tail = (1.0 - level) / 2
    lo = np.argmax(cdf > tail, axis=1)
    hi = np.argmax(cdf >= 1.0 - tail, axis=1)
    return head.ages[lo], head.ages[hi]


def covers(ages: np.ndarray, probs: np.ndarray, head: AgeHead, level: float) -> np.ndarray:
    """Per image: is the true age inside its distribution's central `level` interval (whole years)?"""
    lo, hi = interval(probs, head, level)
    ages = np.asarray(ages, np.float64)
    return (ages >= lo) & (ages <= hi)


def fuse(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """One buyer's frames -> one distribution: the weighted mean of the per-frame distributions.

    A mixture, not a product: frames of one buyer seconds apart are not independent evidence (same
    face, same light, same model error), and multiplying them would make a buyer's distribution
    ever narrower, so the risk would shrink with the number of frames rather than with the evidence.
    """
    p = np.asarray(probs, np.float64)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, np.float64)
    if len(p) == 0 or w.sum() <= 0:
        raise ValueError("fuse needs at least one frame with positive weight")
    return (w[:, None] * p).sum(axis=0) / w.sum()
