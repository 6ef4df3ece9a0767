"""Plain-text tables of `agegate eval`: one block per data set, then a cross-dataset summary.

Pure functions of the eval JSON (metrics dicts), so the table and `--json` never disagree.
"""
from __future__ import annotations

from .metrics import worst_adult_bias

SHOW_SKIPPED = 10  # name this many skipped images in the text; --json and --predictions list all


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"


def share_pct(x) -> str:
    """A share as a percentage to one decimal, "-" for none (eval's band counts, replay's report)."""
    return "-" if x is None else f"{x:.1%}"


def set_block(name: str, split: str, m: dict) -> list[str]:
    c = m["challenge25"]
    cal = m.get("calibration")
    lines = [f"{name} [{split}] ({m['n']} images, {m['skipped']} skipped): MAE {m['mae']:.3f}  RMSE {m['rmse']:.3f}  "
             f"median {m['median_ae']:.3f}  CS5 {m['cs5']:.3f}  bias {m['bias']:+.3f}",
             f"{'band':>6} {'n':>5} {'MAE':>7} {'bias':>7} {'share':>6} {'counted':>7}"
             + (f" {'in 80%':>7} {'in 95%':>7} {'width80':>7}" if cal else "")]
    shares = m.get("band_shares") or {"bands": {}}
    for b, v in m["bands"].items():
        if v["n"]:
            sh = shares["bands"].get(b, {})
            row = f"{b:>6} {v['n']:>5} {v['mae']:>7.3f} {v['bias']:>+7.3f} {share_pct(sh.get('true')):>6} " \
                  f"{share_pct(sh.get('counted')):>7}"
            if cal:
                cb = cal["bands"][b]
                row += f" {_pct(cb['coverage_80']):>7} {_pct(cb['coverage_95']):>7} {cb['width_80']:>7.1f}"
            lines.append(row)
    if shares.get("worst"):
        w = shares["worst"]
        lines.append(f"counting by band (share: of true ages; counted: of estimates): "
                     f"{shares['total_variation']:.1%} of people counted in another band, net of errors that cancel; "
                     f"furthest {w['band']}, "
                     f"{100 * w['difference']:+.1f} points")
    if cal:
        a = cal["all"]
        lines.append(f"calibration: the 80 % interval holds the true age in {_pct(a['coverage_80'])} of images "
                     f"(mean width {a['width_80']:.1f} years), the 95 % interval in {_pct(a['coverage_95'])}")
    op = m.get("operating_point")
    if op:
        lines.append(f"operating point P(under 25) > {op['max_risk']:.3f}: minors decided ok {_pct(op['minors_ok'])}, "
                     f"25+ asked for ID {_pct(op['adults_asked'])} (per image)")
    if c["n_minors"]:
        lines.append(f"Challenge 25: minors predicted 25+ {_pct(c['false_pass_rate'])}, 18+ "
                     f"{_pct(c['minor_pass_18_rate'])}; 25+ flagged {_pct(c['flag_rate_25plus'])}; threshold for "
                     f"<=1% false pass: {c['safe_threshold']} (flags {_pct(c['safe_flag_rate_25plus'])} of 25+)")
    for s in m["skipped_files"][:SHOW_SKIPPED]:
        lines.append(f"  skipped: {s['reason']}")
    if m["skipped"] > SHOW_SKIPPED:
        lines.append(f"  ... and {m['skipped'] - SHOW_SKIPPED} more skipped (--json or --predictions lists all)")
    if m.get("several_faces"):
        lines.append(f"  {m['several_faces']} image(s) show another face at least half the size of the one taken (the "
                     f"largest): someone else's? --predictions lists them (other_faces); a CSV's "
                     f"face_x,face_y,face_w,face_h marks the labelled face")
    return lines


def summary_table(rows: list[tuple[str, str, dict]], overall: dict) -> list[str]:
    head = f"{'set':<14} {'split':<6} {'n':>6} {'MAE':>6} {'bias':>6} {'worst |bias| 18+':>17} " \
           f"{'minors 25+':>10} {'25+ asked':>9} {'band counts off':>15} {'skipped':>7}"
    out = [head, "-" * len(head)]
    for name, split, m in rows + [("overall", "", overall)]:
        c = m["challenge25"]
        adult = worst_adult_bias(m["bands"])
        worst = f"{abs(adult[1]):.2f}" if adult else "-"
        counts_off = share_pct((m.get("band_shares") or {}).get("total_variation"))
        out.append(f"{name[:14]:<14} {split[:6]:<6} {m['n']:>6} {m['mae']:>6.3f} {m['bias']:>+6.2f} {worst:>17} "
                   f"{_pct(c['false_pass_rate']):>10} {_pct(c['flag_rate_25plus']):>9} {counts_off:>15} "
                   f"{m['skipped']:>7}")
    return out


def eval_title(model: str, split: str, detected: bool, used_splits: list[str]) -> str:
    """The report's first line. Sets without a split are evaluated whole (each set's block says so), so the
    title names the split asked for only when some set has it."""
    where = split if not used_splits or split in used_splits else "each set whole (none has a split)"
    return f"{model} on {where}{' through the box detector and crop' if detected else ''}"


def eval_tables(model: str, split: str, detected: bool, rows: list[tuple[str, str, dict]],
                overall: dict | None) -> str:
    lines = [eval_title(model, split, detected, [sp for _, sp, _ in rows])]
    for name, sp, m in rows:
        lines += [""] + set_block(name, sp, m)
    if overall is not None:
        lines += [""] + summary_table(rows, overall)
    return "\n".join(lines)
