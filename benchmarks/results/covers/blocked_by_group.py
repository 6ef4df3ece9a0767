"""Bare-faced buyers a higher eye line leaves undecided, by labelled group: the buyers blocked (`uncertain`, or
never seen) in one `agegate replay --json` and not in another of the same buyers. UTKFace's race from its file
names (age_gender_race_date: 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others); All-Age-Faces as one group.

    python benchmarks/results/covers/blocked_by_group.py benchmarks/results/covers/none-val-800.json \\
        benchmarks/results/covers/none-val-800-line0.5.json
"""
import json
import sys
from collections import Counter
from pathlib import Path

from agegate.benchmarks.eye_light_photos import RACES
from agegate.convert.replay import BLOCKED_RISK


def blocked(replay: dict) -> set[str]:
    return {p for p, (_, risk) in zip(replay["buyer_paths"], replay["buyer_risks"]) if risk == BLOCKED_RISK}


def group(path: str) -> str:
    name = Path(path).name
    return f"UTKFace {RACES.get(name.split('_')[2], '?')}" if "utkface" in path else "All-Age-Faces"


def main(before: str, after: str) -> None:
    a, b = (json.loads(Path(p).read_text()) for p in (before, after))
    if a["buyer_paths"] != b["buyer_paths"]:
        sys.exit("the two replays did not place the same buyers in the same order")
    everyone = Counter(group(p) for p in b["buyer_paths"])
    newly = Counter(group(p) for p in blocked(b) - blocked(a))
    print(f"{'group':22s} {'buyers':>6s} {'newly undecided':>15s}")
    for g in sorted(everyone):
        print(f"{g:22s} {everyone[g]:6d} {newly[g]:6d} ({newly[g] / everyone[g]:5.1%})")
    print(f"{'all':22s} {len(b['buyer_paths']):6d} {sum(newly.values()):6d}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
