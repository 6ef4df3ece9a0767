"""The QA report on disk: report.json, report.html and its plots. Rendering only; the gates are in qa.py."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from .evaluate import Predictions
from .qa import QAReport, data_label


def _plots(y: np.ndarray, f: np.ndarray, q: np.ndarray, out: Path) -> list[str]:
    from agegate.edge.figures import pyplot, save_figure

    plt = pyplot()
    names = []
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(f, q, s=4, alpha=0.4)
    lo, hi = min(f.min(), q.min()), max(f.max(), q.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("float prediction"); ax.set_ylabel("quantized prediction"); ax.set_title("Quantized vs float")
    names.append(save_figure(fig, out / "scatter.png").name)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    edges = np.arange(0, max(91, y.max() + 6), 5)
    mid = (edges[:-1] + edges[1:]) / 2
    for pred, label in ((f, "float"), (q, "quantized")):
        mae = [np.abs(pred - y)[(y >= a) & (y < b)].mean() if ((y >= a) & (y < b)).any() else np.nan
               for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(mid, mae, "o-", ms=3, label=label)
    ax.set_xlabel("true age"); ax.set_ylabel("MAE (years)"); ax.set_title("Error by age"); ax.legend()
    names.append(save_figure(fig, out / "error_by_age.png").name)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    mean, d = (f + q) / 2, q - f
    ax.scatter(mean, d, s=4, alpha=0.4)
    for v, st in ((d.mean(), "-"), (d.mean() + 1.96 * d.std(), "--"), (d.mean() - 1.96 * d.std(), "--")):
        ax.axhline(v, color="r", ls=st, lw=1)
    ax.set_xlabel("mean of float and quantized"); ax.set_ylabel("quantized - float"); ax.set_title("Bland-Altman")
    names.append(save_figure(fig, out / "bland_altman.png").name)
    return names


def _share(rate: float | None, n: int) -> str:
    """`1.2 % (3)`: a Challenge-25 share with the people behind it (it read `0.0123`); `-` of no one."""
    return "-" if rate is None or not n else f"{100 * rate:.1f} % ({round(rate * n)})"


def write_report(rep: QAReport, fp: Predictions, qp: Predictions, out: Path, debug_layers: list | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    d = rep.to_dict()
    if debug_layers is not None:
        d["debug_layers"] = debug_layers
    (out / "report.json").write_text(json.dumps(d, indent=2) + "\n")
    keep, qkeep = fp.pair(qp)
    y, f, q = fp.y_true[keep], fp.y_pred[keep], qp.y_pred[qkeep]
    pngs = _plots(y, f, q, out)
    from .band_plot import plot_bands  # MAE and bias by band: does rounding move a band off the |bias| target?

    plot_bands(out / "bands.png", [("float", rep.float_metrics["bands"]),
                                   ("quantized", rep.quantized_metrics["bands"])])
    pngs.append("bands.png")
    if qp.probs is not None:  # a distribution model: the Challenge-25 trade-off, operating point marked
        from agegate.edge.challenge25 import rates

        from .calibrate import plot_tradeoff

        op = qp.operating_point
        here = rates(qp.risk, qp.y_true, op.max_risk) if op else None
        marks = [("operating point on the QA data, per image", here["adults_asked"], here["minors_ok"])] if here else []
        per_buyer = rep.challenge25.get("per_buyer")
        if per_buyer and op and None not in (per_buyer["adults_asked_share"], per_buyer["minors_ok_share"]):
            draw = ", draw 1" if per_buyer.get("draws", 1) > 1 else ""  # the curve is over every draw
            marks.append((f"the box's decisions on the QA data, per buyer{draw}", per_buyer["adults_asked_share"],
                          per_buyer["minors_ok_share"]))
        plot_tradeoff(out / "challenge25.png", rep.challenge25["per_image"]["curve"],
                      (per_buyer or {}).get("curve", []), op, marks)
        pngs.append("challenge25.png")
    gate_rows = "".join(
        f"<tr><td>{g.name}</td><td style='color:{'green' if g.passed else 'red'}'>{'pass' if g.passed else 'FAIL'}</td>"
        f"<td>{g.value}</td><td>{html.escape(g.limit)}</td><td>{html.escape(g.detail)}</td></tr>" for g in rep.gates)
    band_rows = "".join(f"<tr><td>{b}</td><td>{v['n']}</td><td>{v['float_mae']}</td><td>{v['quantized_mae']}</td>"
                        f"<td>{v['mean_abs_diff']}</td></tr>" for b, v in rep.comparison["bands"].items())
    wide = {"bands.png"}  # two panels side by side: at half the page its labels could not be read
    imgs = "".join(f'<img alt="{p}"{" class=wide" if p in wide else ""} '
                   f'src="data:image/png;base64,{base64.b64encode((out / p).read_bytes()).decode()}">'
                   for p in pngs)
    c25f, c25q = rep.float_metrics["challenge25"], rep.quantized_metrics["challenge25"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>agegate QA</title><style>
body{{font-family:sans-serif;max-width:1000px;margin:2em auto}} td,th{{border:1px solid #ccc;padding:3px 8px}}
table{{border-collapse:collapse}} img{{max-width:48%}} img.wide{{max-width:100%}}</style></head><body>
<h1>QA: {'PASS' if rep.passed else 'FAIL'}</h1>
<p>float <code>{html.escape(rep.float_model)}</code> vs quantized <code>{html.escape(rep.quantized_model)}</code>,
{rep.n} images ({html.escape(", ".join(map(data_label, rep.data)))}). MAE float {rep.float_metrics['mae']}, quantized {rep.quantized_metrics['mae']}
(drift {rep.comparison['drift']}); p95 |diff| {rep.comparison['p95_abs_diff']}.</p>
{"".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in rep.notes)}<h2>Gates</h2><table><tr><th>gate</th><th>result</th><th>value</th><th>limit</th><th>what</th></tr>{gate_rows}</table>
<h2>Challenge 25</h2><p>By the point estimate against 25, per image: minors estimated 25 or over (passed):
float {_share(c25f['false_pass_rate'], c25f['n_minors'])}, quantized {_share(c25q['false_pass_rate'], c25q['n_minors'])}
of {c25q['n_minors']}; 25+ asked for ID: float {_share(c25f['flag_rate_25plus'], c25f['n_25plus'])}, quantized
{_share(c25q['flag_rate_25plus'], c25q['n_25plus'])} of {c25q['n_25plus']}.</p>
<h2>By age band</h2><table><tr><th>band</th><th>n</th><th>float MAE</th><th>quantized MAE</th><th>mean |diff|</th></tr>
{band_rows}</table><h2>Plots: quantized vs float, error by age, Bland-Altman, MAE and bias by band, Challenge 25 (distribution models)</h2>{imgs}</body></html>"""
    (out / "report.html").write_text(page)
