#!/usr/bin/env python3
"""One row per candidate, from its `agegate calibrate --json` and `agegate eval --json` files on val.

Usage: compare.py CALIBRATE.json:EVAL.json ...

Columns: MAE per set; the worst |bias| of a band from 18 up per set; 25+ asked for ID per image at the
loosest threshold that passes at most 0.5 %, 1 % and 2 % of minors (read off calibrate's image curve, so
every candidate is judged at the same minors' share); and at the operating point calibrate chose, per image
and per buyer (its replay), with the minors that buyer replay passed.
"""
import json
import sys

ADULT_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
MINOR_SHARES = (0.005, 0.01, 0.02)


def asked_at(curve: list[dict], minors_ok: float) -> float:
    return min((p["adults_asked"] for p in curve if p["minors_ok"] <= minors_ok), default=float("nan"))


def row(calibrate_file: str, eval_file: str) -> str:
    cal, ev = json.load(open(calibrate_file)), json.load(open(eval_file))
    sets = {s["name"]: s for s in ev["sets"]}
    worst = {name: max(abs(s["bands"][b]["bias"]) for b in ADULT_BANDS if b in s["bands"]) for name, s in sets.items()}
    at = " ".join(f"{100 * asked_at(cal['image_curve'], share):5.1f}" for share in MINOR_SHARES)
    image, buyer = cal["operating_point"]["measured"]["per_image"], cal["operating_point"]["measured"]["per_buyer"]
    passed = round(buyer["minors_ok"] * buyer["n_minors"])
    return (f"{calibrate_file.split('/')[-1][:30]:30s} {sets['utkface']['mae']:5.2f} {sets['aaf']['mae']:5.2f} "
            f"{worst['utkface']:6.2f} {worst['aaf']:6.2f} | {at} | {100 * image['adults_asked']:5.1f} "
            f"{100 * buyer['adults_asked']:5.1f} ({passed}/{buyer['n_minors']})")


if __name__ == "__main__":
    print(f"{'candidate (val)':30s} {'UTK':>5s} {'AAF':>5s} {'w18+U':>6s} {'w18+A':>6s} | 25+ asked at minors ok "
          f"0.5/1/2 % | at the operating point: image, buyer (minors ok)")
    for pair in sys.argv[1:]:
        print(row(*pair.split(":")))
