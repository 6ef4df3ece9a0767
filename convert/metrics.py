"""Age-estimation metrics: pure functions of (true ages, predicted ages).

The keys are the eval JSON contract (the design sketch, ../shared/DESIGN.md): n, mae, rmse, median_ae, cs5,
bias, bands, challenge25; and band_shares (what the per-band counts of the marketing use get right).
"""
from __future__ import annotations

import numpy as np

from agegate.edge.bands import BAND_LABELS, BANDS, band_index
from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE

MAX_FALSE_PASS = 0.01


def _r(x: float, nd: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def challenge25(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = CHALLENGE_AGE,
                max_false_pass: float = MAX_FALSE_PASS) -> dict:
    """What the ID-check decision does with these predictions.

    false_pass_rate: of true minors (< MINOR_AGE), share predicted >= threshold (served without ID).
    minor_pass_18_rate: of true minors, share predicted >= 18.
    flag_rate_25plus: of true 25+, share predicted < threshold (asked for ID).
    safe_threshold: the lowest threshold whose false pass rate is <= max_false_pass, and its flag rate.
    """
    minors = y_pred[y_true < MINOR_AGE]
    adults = y_pred[y_true >= CHALLENGE_AGE]
    out = {
        "threshold": threshold,
        "n_minors": int(len(minors)),
        "n_25plus": int(len(adults)),
        "false_pass_rate": _r(np.mean(minors >= threshold)) if len(minors) else None,
        "minor_pass_18_rate": _r(np.mean(minors >= MINOR_AGE)) if len(minors) else None,
        "flag_rate_25plus": _r(np.mean(adults < threshold)) if len(adults) else None,
    }
    if len(minors):
        # Smallest t with mean(minors >= t) <= max_false_pass: just above the right order statistic.
        k = int(np.floor(max_false_pass * len(minors)))  # minors allowed to pass
        srt = np.sort(minors)[::-1]
        t = float(srt[k]) + 1e-3 if k < len(srt) else float(srt[-1])
        t = max(t, 0.0)
        out["safe_threshold"] = _r(t, 2)
        out["safe_false_pass_rate"] = _r(np.mean(minors >= t))
        out["safe_flag_rate_25plus"] = _r(np.mean(adults < t)) if len(adults) else None
    else:
        out["safe_threshold"] = out["safe_false_pass_rate"] = out["safe_flag_rate_25plus"] = None
    out["max_false_pass"] = max_false_pass
    return out


def shares_apart(counted, true) -> float:
    """Half the summed |difference| of two band-share vectors (their total variation): the share of people
    counted in a band they are not in, net of the errors that cancel between bands."""
    return float(0.5 * np.abs(np.asarray(counted, np.float64) - np.asarray(true, np.float64)).sum())


def band_shares(y_true, y_pred) -> dict:
    """What the marketing counts (buyers per age band) get right: per band, its share of the true ages and of the
    estimates; `total_variation` (`shares_apart`) and the `worst` band's difference, in shares."""
    true = np.bincount(band_index(y_true), minlength=len(BANDS)) / max(len(y_true), 1)
    counted = np.bincount(band_index(y_pred), minlength=len(BANDS)) / max(len(y_pred), 1)
    diff = counted - true
    w = int(np.argmax(np.abs(diff)))
    return {"bands": {label: {"true": _r(t), "counted": _r(c)} for label, t, c in zip(BAND_LABELS, true, counted)},
            "total_variation": _r(shares_apart(counted, true)),
            "worst": {"band": BAND_LABELS[w], "difference": _r(diff[w])}}


def age_metrics(y_true, y_pred) -> dict:
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"shapes differ or are not 1-D: {y_true.shape} vs {y_pred.shape}")
    if len(y_true) == 0:
        return {"n": 0, "mae": None, "rmse": None, "median_ae": None, "cs5": None, "bias": None,
                "bands": {}, "band_shares": None, "challenge25": challenge25(y_true, y_pred)}
    err = y_pred - y_true
    ae = np.abs(err)
    idx = band_index(y_true)
    bands = {}
    for i, label in enumerate(BAND_LABELS):
        m = idx == i
        bands[label] = {"n": int(m.sum()), "mae": _r(ae[m].mean()) if m.any() else None,
                        "bias": _r(err[m].mean()) if m.any() else None}
    return {
        "n": int(len(y_true)),
        "mae": _r(ae.mean()),
        "rmse": _r(np.sqrt(np.mean(err**2))),
        "median_ae": _r(np.median(ae)),
        "cs5": _r(np.mean(ae <= 5)),
        "bias": _r(err.mean()),
        "bands": bands,
        "band_shares": band_shares(y_true, y_pred),
        "challenge25": challenge25(y_true, y_pred),
    }


#: The per-band bias target of issues 15 and 17: |bias| at most this in every band from 18 up (years).
BAND_BIAS_TARGET = 1.5


def worst_adult_bias(bands: dict[str, dict]) -> tuple[str, float] | None:
    """The band from 18 up (with images) whose bias is furthest from 0, and that bias: what the per-band bias
    target (BAND_BIAS_TARGET) is judged by. None when no such band has images."""
    adult = [(label, bands[label]["bias"]) for label, lo, _ in BANDS
             if lo >= MINOR_AGE and bands.get(label, {}).get("n")]
    return max(adult, key=lambda band_bias: abs(band_bias[1])) if adult else None


def group_mae(y_true, y_pred, groups) -> dict[str, dict]:
    """MAE per group label (gender, race, ...) with counts; for model cards."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    out = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        out[str(g)] = {"n": int(m.sum()), "mae": _r(np.abs(y_pred[m] - y_true[m]).mean())}
    return out


INTERVAL_LEVELS = (0.8, 0.95)


def calibration(y_true, probs, head) -> dict:
    """How honest a distribution model's spread is: per band, how often the true age lies inside the
    central 80 % and 95 % intervals (a calibrated model: about 0.80 and 0.95) and how wide they are."""
    from agegate.edge.age_head import covers, interval

    y_true = np.asarray(y_true, np.float64)
    idx = band_index(y_true)
    hits = {lv: covers(y_true, probs, head, lv) for lv in INTERVAL_LEVELS}
    widths = {}
    for lv in INTERVAL_LEVELS:
        lo, hi = interval(probs, head, lv)
        widths[lv] = hi - lo + 1  # whole years, both ends included

    def summary(m: np.ndarray) -> dict:
        out: dict = {"n": int(m.sum())}
        for lv in INTERVAL_LEVELS:
            key = f"{round(lv * 100)}"
            out[f"coverage_{key}"] = _r(np.mean(hits[lv][m])) if m.any() else None
            out[f"width_{key}"] = _r(np.mean(widths[lv][m])) if m.any() else None
        return out

    return {"all": summary(np.ones(len(y_true), bool)),
            "bands": {label: summary(idx == i) for i, label in enumerate(BAND_LABELS)}}
