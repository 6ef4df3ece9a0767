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
#: Confidence with which the chosen operating point meets its target on new buyers: the share of minors
#: decided ok is bounded by its one-sided Clopper-Pearson upper limit, not by the share seen on val.
#: Choosing at the point estimate exceeds the target on new data about half the time: the first v2
#: candidate, chosen that way at 1.00 % of 903 val minors, passed 1.14 % and 1.43 % on the two test sets.
CONFIDENCE = 0.9
#: The risk of a buyer no threshold can pass (decided `uncertain`, or never seen): above every threshold,
#: so such a buyer counts as asked at any operating point, 1 included.
BLOCKED_RISK = 2.0


@dataclass(frozen=True)
class OperatingPoint:
    """Ask for ID when P(under 25) > max_risk. `targets` and `measured` say what it was chosen for and
    what it gave on `chosen_on` (data set paths and split)."""

    max_risk: float
    target_minors_ok_image: float = DEFAULT_MAX_MINORS_OK_IMAGE
    target_minors_ok_buyer: float | None = DEFAULT_MAX_MINORS_OK_BUYER
    measured: dict[str, Any] | None = None  # per_image / per_buyer: minors_ok, adults_asked, n_minors, n_adults (draws)
    chosen_on: str = ""
    looser_than_default: bool = False  # an operator asked for a looser target (--allow-looser), recorded
    confidence: float | None = CONFIDENCE  # the target holds with this confidence on new buyers (None: point estimate)
    excluded: list[dict[str, str]] | None = None  # images left out as mislabelled by a person's check: path, why
    # The box's decision settings the per-buyer point was chosen with (BoxOptions.decision_rules: blur limit,
    # smallest face aged, frames before deciding, ...). A box that decides otherwise sees other per-buyer
    # rates; None: chosen before agegate recorded them.
    box_rules: dict[str, float] | None = None

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
                s += (f"; {where.replace('_', ' ')}: minors ok {100 * m['minors_ok']:.2f} % of {m['n_minors']}, "
                      f"25+ asked {100 * m['adults_asked']:.1f} %"
                      + (f" ({m['draws']} draws)" if m.get("draws") else ""))
                if m.get("target_shown") is False:
                    s += f" (too few minors to show the {where.replace('_', '-')} target)"
        if self.excluded:
            s += f"; {len(self.excluded)} image(s) left out as mislabelled"
        if self.box_rules:
            s += f"; per buyer with blur limit {self.box_rules.get('min_sharpness', '?'):g}"
        return s + (f" (chosen on {self.chosen_on})" if self.chosen_on else "")


#: Decision settings recorded with operating points only from a later date, with the value every box had
#: before: a point recorded without one was chosen at that value (camera refine, detector scores: 2026-12-04;
#: the sunglasses check: 2026-12-06; the second look's margin over the camera's line: 2026-12-07).
RULES_BEFORE_RECORDED = {"refine_below": 0.0, "min_score": 0.5, "small_face_score": 0.5, "min_eye_light": 0.0,
                         "refine_margin": 1.0}


def rules_differ(chosen_with: dict[str, float] | None, box: dict[str, float]) -> list[str]:
    """The decision settings in which this box differs from those an operating point was chosen with, as
    "name: chosen X, this box Y" (empty when they agree or were not recorded)."""
    if chosen_with is None:
        return []
    chosen = {**RULES_BEFORE_RECORDED, **chosen_with}
    return [f"{k}: chosen with {v:g}, this box {box[k]:g}" for k, v in sorted(chosen.items())
            if k in box and float(box[k]) != float(v)]


def settings_mismatch(op: OperatingPoint | None, box: dict[str, float]) -> str:
    """Why this box's per-buyer rates may not be those its operating point was chosen for, as a sentence ('' when
    they are, or when the point measured no buyers): other decision settings (`rules_differ`), or settings
    never recorded (a point chosen before agegate recorded them, 2026-12-03: its blur limit may be 20 or 10)."""
    if op is None or not (op.measured or {}).get("per_buyer"):
        return ""
    if op.box_rules is None:
        return ("the box's decision settings were not recorded with its per-buyer rates (calibrated before agegate "
                "recorded them)")
    differ = rules_differ(op.box_rules, box)
    return f"this box decides otherwise ({'; '.join(differ)})" if differ else ""


def by_draw(risk) -> np.ndarray:
    """Risks as (draws, people): a row per replay of the same people in the same order (calibrate --draws), a
    1-D array being one draw. Every share below counts a person passing in one of three draws as a third of
    one: what their chance of passing on a new visit is, estimated from the draws."""
    risk = np.asarray(risk, np.float64)
    return risk[None, :] if risk.ndim == 1 else risk


def rates(risk: np.ndarray, ages: np.ndarray, max_risk: float, upper: bool = True) -> dict[str, Any]:
    """What a threshold does: share of minors (< 18) decided ok (risk <= max_risk) and of 25+ asked for ID,
    with the one-sided 90 % upper bound on the minors' share (what the data can show about new buyers).
    `risk`: one per person, or (draws, people) (`by_draw`); the bound counts a fraction of a person passing
    as a whole one, and n is the number of people, not of draws (one person seen again is no new evidence
    of how others look)."""
    risk, ages = by_draw(risk), np.asarray(ages, np.float64)
    minors, adults = risk[:, ages < MINOR_AGE], risk[:, ages >= CHALLENGE_AGE]
    n_minors = minors.shape[1]
    passed = float(np.sum(minors <= max_risk)) / len(risk)  # people, a fraction each where draws differ
    return {"minors_ok": passed / n_minors if n_minors else None,
            "minors_ok_upper": binomial_upper(int(np.ceil(passed - 1e-9)), n_minors) if n_minors and upper else None,
            "adults_asked": float(np.mean(adults > max_risk)) if adults.size else None,
            "n_minors": int(n_minors), "n_adults": int(adults.shape[1])}


def binomial_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen as k of n (bisection on the binomial CDF)."""
    if k >= n:
        return 1.0
    from math import exp, lgamma, log

    def cdf(p: float) -> float:  # P(X <= k) for X ~ Binomial(n, p)
        if p <= 0:
            return 1.0
        if p >= 1:
            return 0.0
        c = lgamma(n + 1)
        return sum(exp(c - lgamma(i + 1) - lgamma(n - i + 1) + i * log(p) + (n - i) * log(1 - p)) for i in range(k + 1))

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - confidence else (lo, mid)
    return hi


def binomial_lower(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson lower bound on a rate seen as k of n: 1 - the upper bound of the complement."""
    return 0.0 if k <= 0 else 1.0 - binomial_upper(n - k, n, confidence)


def allowed_minors(n: int, max_minors_ok: float, confidence: float | None = CONFIDENCE) -> int | None:
    """How many of n minors may pass so that the target holds with this confidence (None: not even 0,
    i.e. too few minors to show the target). confidence=None: the point estimate, floor(target * n)."""
    if confidence is None:
        return int(np.floor(max_minors_ok * n))
    k = None
    for i in range(n + 1):
        if binomial_upper(i, n, confidence) > max_minors_ok:
            break
        k = i
    return k


def minors_needed(max_minors_ok: float, confidence: float | None = CONFIDENCE) -> int | None:
    """The fewest minors that can show a target, all of them decided as they should be (None: no number can, a
    target of 0 with confidence). 1 % per image at 90 %: 230; 0.5 % per buyer: 460."""
    if confidence is None:
        return 1
    if max_minors_ok <= 0:
        return None
    n = max(1, int(np.ceil(np.log(1 - confidence) / np.log(1 - max_minors_ok))))
    while allowed_minors(n, max_minors_ok, confidence) is None:  # the closed form's rounding, made exact
        n += 1
    return n


def choose_max_risk(risk: np.ndarray, ages: np.ndarray, max_minors_ok: float,
                    confidence: float | None = CONFIDENCE) -> float:
    """The largest threshold (fewest adults asked) at which the share of minors decided ok meets the target
    (with `confidence`, see CONFIDENCE). Minors with risk <= t pass; allowing k of them, t sits just below
    the (k+1)-th smallest minor risk. With several draws (`by_draw`) k people may pass in all, counted in
    fractions: k x draws of the minors' risks over every draw may lie at or below t, so one face that passes
    in one draw of three costs a third of one. With too few minors to show the target even with none passing,
    the threshold lets none pass (the strictest the data can support). No minors at all: an error."""
    risk, ages = by_draw(risk), np.asarray(ages, np.float64)
    minors = risk[:, ages < MINOR_AGE]
    if not minors.size:
        raise ModelError("no minors (under 18) in the calibration data: the operating point cannot be chosen")
    k = allowed_minors(minors.shape[1], max_minors_ok, confidence)
    k = (0 if k is None else k) * len(risk)
    flat = np.sort(minors, axis=None)
    if k >= len(flat):
        return 1.0
    t = np.nextafter(flat[k], -np.inf)  # the (k+1)-th smallest minor risk must stay above t
    return float(min(1.0, max(0.0, t)))  # a buyer no threshold passes (BLOCKED_RISK) leaves t at 1


#: Decimals an operating point is written with, and those of the replay's buyer risks it is chosen from: one
#: more, so that the point, rounded down, stays below the risk of the minor it must not pass. Rounded to the
#: nearest (as until 2026-12-07) a point just below a risk of 0.07279 (5 decimals) was written as 0.07279,
#: which lets that minor pass when their unrounded risk is 0.072785-0.07279.
POINT_DECIMALS = 6
RISK_DECIMALS = POINT_DECIMALS + 1


def written_point(max_risk: float) -> float:
    """`max_risk` as written into a model's metadata: rounded down to POINT_DECIMALS, never up past a risk it
    must stay below (choose_max_risk gives a value just under one)."""
    scale = 10 ** POINT_DECIMALS
    steps = np.floor(max_risk * scale)
    if steps / scale > max_risk:  # the product rounded up to a whole step (0.07 - 1e-17 times 1e6 is 70000.0)
        steps -= 1
    return float(max(0.0, steps / scale))


#: Draws of `point_spread` (about half a second for 1,600 buyers on the 2-core EPYC).
SPREAD_DRAWS = 1000


def point_spread(risk: np.ndarray, ages: np.ndarray, max_minors_ok: float, confidence: float | None = CONFIDENCE,
                 draws: int = SPREAD_DRAWS, seed: int = 0) -> dict[str, Any]:
    """Where `choose_max_risk` would have put the point, and what it would have cost (25+ asked), on other draws
    of the same number of minors and adults (a seeded bootstrap): 5th, 50th and 95th percentiles of each. The
    point is the (k+1)-th lowest minor risk for a small k (k = 1 of 902 val minor buyers), so a change that moves
    one or two minors' risks moves it, and this says by how much such chance alone does (2026-12-07: changes to the
    box checked on another draw of every val minor left every risk as it was, while calibrate's own replay moved one
    13-year-old from 0.130 to 0.069 and the point from 0.0987 to 0.0728: MODEL_HISTORY.md)."""
    risk, ages = by_draw(risk), np.asarray(ages, np.float64)
    minors, adults = risk[:, ages < MINOR_AGE], risk[:, ages >= CHALLENGE_AGE]
    rng = np.random.default_rng(seed)
    n, m = minors.shape[1], adults.shape[1]
    as_minors = np.zeros(n)  # every drawn risk is a minor's (no minors: choose_max_risk says so)
    points, asked = np.empty(draws), np.full(draws, np.nan)
    for i in range(draws):  # people are drawn, each with all their replays (a person is the unit sampled)
        points[i] = choose_max_risk(minors[:, rng.integers(0, n, n) if n else []], as_minors, max_minors_ok,
                                    confidence)
        if m:
            asked[i] = np.mean(adults[:, rng.integers(0, m, m)] > points[i])
    q = (5, 50, 95)
    return {"draws": draws, "seed": seed, "percentiles": list(q),
            "point": [round(float(v), 4) for v in np.percentile(points, q)],
            "adults_asked": [round(float(v), 4) for v in np.percentile(asked, q)] if m else None}


def tradeoff_curve(risk: np.ndarray, ages: np.ndarray, points: int = 101) -> list[dict[str, float]]:
    """Minors decided ok against 25+ asked for ID, over thresholds 0-1 (NIST's Challenge-25 plot). A risk
    above 1 (BLOCKED_RISK: a buyer decided `uncertain` or never seen) passes at no threshold, so the curve
    ends where every buyer the box could decide is decided ok, not at 100 % of minors. `risk`: see `by_draw`."""
    risk, ages = by_draw(risk), np.asarray(ages, np.float64)
    qs = np.unique(np.concatenate([np.linspace(0, 1, points), np.quantile(risk, np.linspace(0, 1, points))]))
    qs = qs[qs <= 1.0]
    out = []
    for t in qs:
        r = rates(risk, ages, float(t), upper=False)
        out.append({"max_risk": round(float(t), 6), "minors_ok": r["minors_ok"], "adults_asked": r["adults_asked"]})
    return out
