"""The ID-check decision: one per buyer, from the fused age of their track, with a reason when unsure.

ok        fused age >= id_threshold, enough good frames, frames agree
          (a distribution model with an operating point: P(under 25) <= its max_risk)
id_check  fused age < id_threshold (Challenge 25 by default); with a distribution model,
          P(under 25) > max_risk
uncertain the evidence is thin; the cashier treats it as id_check, and `reason` says why, so a
          box whose uncertain share rises points at its cause (a camera that moved, a dead lamp)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

from .contracts import CHALLENGE_AGE


class Decision(str, Enum):
    """What the till is told. A str enum: JSON, SQLite and f-strings see "ok", "id_check", "uncertain"."""

    OK = "ok"
    ID_CHECK = "id_check"
    UNCERTAIN = "uncertain"

    def __str__(self) -> str:
        return self.value


class Reason(str, Enum):
    """Why a decision is `uncertain` (the first that applies)."""

    FACE_TOO_SMALL = "face_too_small"  # most unusable frames: the face was too far from the camera
    BLURRED = "blurred"  # ... the face moved or was out of focus
    TOO_DARK = "too_dark"  # ... the face was too dark to read
    EYES_HIDDEN = "eyes_hidden"  # ... the eyes were behind dark glasses (ask the buyer to take them off)
    TOO_FEW_FRAMES = "too_few_frames"  # the buyer was not seen for long enough
    FRAMES_DISAGREE = "frames_disagree"  # the good frames' ages spread too widely

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DecisionPolicy:
    id_threshold: float = CHALLENGE_AGE
    # Both guards set at the first release; measured 2026-12-04 on 1,702 val buyers (benchmarks/evidence_probe.py
    # --min-frames 3,5,8 --spreads 6,8,12,16,100): every value gives the same operating point and the same 1 of
    # 902 minor buyers ok, 25+ asked within 2 of 706; they touch 4-18 buyers (MODEL_HISTORY.md).
    min_frames: int = 5
    max_spread: float = 12.0
    # A distribution model's operating point (challenge25.OperatingPoint.max_risk): when set, the risk
    # P(under 25) decides instead of the fused age against id_threshold.
    max_risk: float | None = None


def decide(fused_age: float | None, good_frames: int, spread: float, policy: DecisionPolicy,
           bad_frames: Counter | None = None, risk: float | None = None) -> tuple[Decision, str]:
    """(decision, reason): reason is '' unless the decision is uncertain, then a sentence that starts
    with a Reason code, e.g. "too_few_frames: 3 good frames of 5 needed (7 blurred)"."""
    if fused_age is None or good_frames < policy.min_frames:
        bad = bad_frames or Counter()
        code = Reason(bad.most_common(1)[0][0]) if bad else Reason.TOO_FEW_FRAMES
        detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in bad.most_common())
        return Decision.UNCERTAIN, (f"{code}: {good_frames} good frame(s) of {policy.min_frames} needed"
                                    + (f" ({detail})" if detail else ""))
    if spread > policy.max_spread:
        return Decision.UNCERTAIN, (f"{Reason.FRAMES_DISAGREE}: the good frames' ages spread {spread:.1f} years "
                                    f"(more than {policy.max_spread:g})")
    if risk is not None and policy.max_risk is not None:
        return (Decision.ID_CHECK if risk > policy.max_risk else Decision.OK), ""
    return (Decision.ID_CHECK if fused_age < policy.id_threshold else Decision.OK), ""


def reason_code(reason: str | None) -> str | None:
    """The Reason code at the start of a reason sentence (None for none)."""
    return reason.split(":", 1)[0] if reason else None
