"""The ID-check decision: one per buyer, from the fused age of their track.

ok        fused age >= id_threshold, enough good frames, frames agree
id_check  fused age < id_threshold (Challenge 25 by default)
uncertain too few good frames, or frames disagree by more than max_spread years;
          the cashier treats it as id_check
"""
from __future__ import annotations

from dataclasses import dataclass

DECISIONS = ("ok", "id_check", "uncertain")


@dataclass(frozen=True)
class DecisionPolicy:
    id_threshold: float = 25.0
    min_frames: int = 5
    max_spread: float = 12.0


def decide(fused_age: float | None, good_frames: int, spread: float, policy: DecisionPolicy) -> str:
    if fused_age is None or good_frames < policy.min_frames or spread > policy.max_spread:
        return "uncertain"
    return "id_check" if fused_age < policy.id_threshold else "ok"


def needs_id(decision: str) -> bool:
    return decision != "ok"
