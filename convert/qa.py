"""`agegate qa`: compare a quantized model with its float parent, image by image.

A model ships only if every gate passes: the business MAE gate, the drift from
its float parent, the share of ID-check decisions that flip, and a collapse check
(a quantized regression head that clips its range or outputs a constant, as in
tensorflow issue 47068, must fail even if its MAE happens to look tolerable).
"""
from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agegate.edge.bands import BAND_LABELS, band_index

from .evaluate import Predictions
from agegate.edge.contracts import CHALLENGE_AGE

from agegate.edge.challenge25 import rates

from .metrics import age_metrics


@dataclass
class Gates:
    max_mae: float = 8.0
    max_drift: float = 0.5
    max_flips: float = 0.02
    min_pearson: float = 0.9
    min_std_ratio: float = 0.5  # quantized prediction spread vs float spread
    id_threshold: float = CHALLENGE_AGE


@dataclass
class GateResult:
    name: str
    passed: bool
    value: float
    limit: str
    detail: str = ""

    def __post_init__(self) -> None:  # numpy scalars in, JSON-safe Python values out
        self.passed = bool(self.passed)
        self.value = float(self.value)


@dataclass
class QAReport:
    float_model: str
    quantized_model: str
    n: int
    float_metrics: dict
    quantized_metrics: dict
    comparison: dict
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["verdict"] = "PASS" if self.passed else "FAIL"
        return d


FLOAT_QUANTIZATIONS = ("none", "float32", "float16")


def check_float_parent(float_model: str, quantized: str) -> None:
    """A gate against the wrong parent proves nothing: refuse one that is not float, or is the model itself."""
    from agegate.edge.errors import UsageError
    from agegate.edge.metadata import sha256_file

    from .evaluate import is_tflite, model_metadata

    fq = model_metadata(float_model).quantization
    if fq not in FLOAT_QUANTIZATIONS:
        raise UsageError(f"--float {float_model} is a {fq} model, not a float parent; give the run folder or a "
                         f"float32 .tflite it was converted from")
    if Path(float_model).resolve() == Path(quantized).resolve():
        raise UsageError(f"--float and --quantized are the same file ({quantized})")
    if is_tflite(float_model) and is_tflite(quantized) and sha256_file(float_model) == sha256_file(quantized):
        raise UsageError(f"--float {float_model} and --quantized {quantized} are the same model (identical bytes); "
                         f"QA compares a quantized model with the float model it came from")


def compare(fp: Predictions, qp: Predictions, gates: Gates, float_model: str, quant_model: str,
            per_set: dict[str, Predictions] | None = None) -> QAReport:
    # Pair by image: a file skipped by one model (no face) is dropped from both.
    qmap = dict(zip(qp.paths, qp.y_pred))
    keep = [i for i, p in enumerate(fp.paths) if p in qmap]
    y = fp.y_true[keep]
    f = fp.y_pred[keep]
    q = np.array([qmap[fp.paths[i]] for i in keep])
    fm, qm = age_metrics(y, f), age_metrics(y, q)
    diff = np.abs(q - f)
    flips = np.mean((f < gates.id_threshold) != (q < gates.id_threshold))
    r = float(np.corrcoef(f, q)[0, 1]) if np.std(q) > 0 and np.std(f) > 0 else 0.0
    std_ratio = float(np.std(q) / np.std(f)) if np.std(f) > 0 else 0.0
    idx = band_index(y)
    bands = {}
    for i, b in enumerate(BAND_LABELS):
        m = idx == i
        if m.any():
            bands[b] = {"n": int(m.sum()), "float_mae": round(float(np.abs(f[m] - y[m]).mean()), 4),
                        "quantized_mae": round(float(np.abs(q[m] - y[m]).mean()), 4),
                        "mean_abs_diff": round(float(diff[m].mean()), 4)}
    comp = {"drift": round(qm["mae"] - fm["mae"], 4), "p95_abs_diff": round(float(np.percentile(diff, 95)), 4),
            "max_abs_diff": round(float(diff.max()), 4), "decision_flip_rate": round(float(flips), 4),
            "pearson_r": round(r, 5), "std_ratio": round(std_ratio, 4),
            "float_range": [round(float(f.min()), 2), round(float(f.max()), 2)],
            "quantized_range": [round(float(q.min()), 2), round(float(q.max()), 2)],
            "unique_quantized_values": int(len(np.unique(np.round(q, 3)))), "bands": bands}
    rep = QAReport(float_model, quant_model, int(len(y)), fm, qm, comp)
    g = gates
    rep.gates = [
        GateResult("mae", qm["mae"] < g.max_mae, qm["mae"], f"< {g.max_mae}", "business requirement: MAE under 8 years"),
        GateResult("drift", comp["drift"] <= g.max_drift, comp["drift"], f"<= {g.max_drift}",
                   "quantized MAE minus float MAE"),
        GateResult("decision_flips", flips <= g.max_flips, comp["decision_flip_rate"], f"<= {g.max_flips}",
                   f"share of images whose ID check (age < {g.id_threshold:g}) differs between the models"),
        GateResult("not_collapsed", r >= g.min_pearson and std_ratio >= g.min_std_ratio, round(r, 4),
                   f"pearson >= {g.min_pearson}, std ratio >= {g.min_std_ratio}",
                   f"std ratio {std_ratio:.3f}, {comp['unique_quantized_values']} distinct outputs, "
                   f"range {comp['quantized_range']} vs float {comp['float_range']}"),
    ]
    for name, p in (per_set or {}).items():  # the business gate per population, not only on average
        mae = age_metrics(p.y_true, p.y_pred)["mae"]
        rep.gates.append(GateResult(f"mae[{name}]", mae < g.max_mae, mae, f"< {g.max_mae}",
                                    f"quantized MAE on {name} ({len(p.y_true)} images)"))
    rep.gates += operating_point_gates(qp, per_set)
    return rep


def operating_point_gates(qp: Predictions, per_set: dict[str, Predictions] | None = None) -> list[GateResult]:
    """A calibrated model must meet the target it carries on the QA data too (per image, on every set):
    an operating point chosen on val that passes more minors on test was chosen too loosely."""
    op = qp.operating_point
    if qp.probs is None or op is None:
        return []
    out = []
    for name, p in [("", qp)] + sorted((per_set or {}).items()):
        r = rates(p.risk, p.y_true, op.max_risk)
        if r["minors_ok"] is None:
            continue
        label = f"operating_point[{name}]" if name else "operating_point"
        out.append(GateResult(label, r["minors_ok"] <= op.target_minors_ok_image, round(r["minors_ok"], 4),
                              f"<= {op.target_minors_ok_image}",
                              f"minors decided ok per image at P(under 25) > {op.max_risk:.3f} "
                              f"({r['n_minors']} minors); it asks {r['adults_asked']:.1%} of 25+ for ID"))
    return out


def _plots(y: np.ndarray, f: np.ndarray, q: np.ndarray, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(f, q, s=4, alpha=0.4)
    lo, hi = min(f.min(), q.min()), max(f.max(), q.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("float prediction"); ax.set_ylabel("quantized prediction"); ax.set_title("Quantized vs float")
    fig.tight_layout(); fig.savefig(out / "scatter.png", dpi=90); plt.close(fig); names.append("scatter.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    edges = np.arange(0, max(91, y.max() + 6), 5)
    mid = (edges[:-1] + edges[1:]) / 2
    for pred, label in ((f, "float"), (q, "quantized")):
        mae = [np.abs(pred - y)[(y >= a) & (y < b)].mean() if ((y >= a) & (y < b)).any() else np.nan
               for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(mid, mae, "o-", ms=3, label=label)
    ax.set_xlabel("true age"); ax.set_ylabel("MAE (years)"); ax.set_title("Error by age"); ax.legend()
    fig.tight_layout(); fig.savefig(out / "error_by_age.png", dpi=90); plt.close(fig); names.append("error_by_age.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    mean, d = (f + q) / 2, q - f
    ax.scatter(mean, d, s=4, alpha=0.4)
    for v, st in ((d.mean(), "-"), (d.mean() + 1.96 * d.std(), "--"), (d.mean() - 1.96 * d.std(), "--")):
        ax.axhline(v, color="r", ls=st, lw=1)
    ax.set_xlabel("mean of float and quantized"); ax.set_ylabel("quantized - float"); ax.set_title("Bland-Altman")
    fig.tight_layout(); fig.savefig(out / "bland_altman.png", dpi=90); plt.close(fig); names.append("bland_altman.png")
    return names


def write_report(rep: QAReport, fp: Predictions, qp: Predictions, out: Path, debug_layers: list | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    d = rep.to_dict()
    if debug_layers is not None:
        d["debug_layers"] = debug_layers
    (out / "report.json").write_text(json.dumps(d, indent=2) + "\n")
    qmap = dict(zip(qp.paths, qp.y_pred))
    keep = [i for i, p in enumerate(fp.paths) if p in qmap]
    y, f = fp.y_true[keep], fp.y_pred[keep]
    q = np.array([qmap[fp.paths[i]] for i in keep])
    pngs = _plots(y, f, q, out)
    gate_rows = "".join(
        f"<tr><td>{g.name}</td><td style='color:{'green' if g.passed else 'red'}'>{'pass' if g.passed else 'FAIL'}</td>"
        f"<td>{g.value}</td><td>{html.escape(g.limit)}</td><td>{html.escape(g.detail)}</td></tr>" for g in rep.gates)
    band_rows = "".join(f"<tr><td>{b}</td><td>{v['n']}</td><td>{v['float_mae']}</td><td>{v['quantized_mae']}</td>"
                        f"<td>{v['mean_abs_diff']}</td></tr>" for b, v in rep.comparison["bands"].items())
    imgs = "".join(f'<img alt="{p}" src="data:image/png;base64,{base64.b64encode((out / p).read_bytes()).decode()}">'
                   for p in pngs)
    c25f, c25q = rep.float_metrics["challenge25"], rep.quantized_metrics["challenge25"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>agegate QA</title><style>
body{{font-family:sans-serif;max-width:1000px;margin:2em auto}} td,th{{border:1px solid #ccc;padding:3px 8px}}
table{{border-collapse:collapse}} img{{max-width:48%}}</style></head><body>
<h1>QA: {'PASS' if rep.passed else 'FAIL'}</h1>
<p>float <code>{html.escape(rep.float_model)}</code> vs quantized <code>{html.escape(rep.quantized_model)}</code>,
{rep.n} images. MAE float {rep.float_metrics['mae']}, quantized {rep.quantized_metrics['mae']}
(drift {rep.comparison['drift']}); p95 |diff| {rep.comparison['p95_abs_diff']}.</p>
<h2>Gates</h2><table><tr><th>gate</th><th>result</th><th>value</th><th>limit</th><th>what</th></tr>{gate_rows}</table>
<h2>Challenge 25</h2><p>Minors predicted 25+: float {c25f['false_pass_rate']}, quantized {c25q['false_pass_rate']}.
25+ flagged for ID: float {c25f['flag_rate_25plus']}, quantized {c25q['flag_rate_25plus']}.</p>
<h2>By age band</h2><table><tr><th>band</th><th>n</th><th>float MAE</th><th>quantized MAE</th><th>mean |diff|</th></tr>
{band_rows}</table><h2>Plots: quantized vs float, error by age, Bland-Altman</h2>{imgs}</body></html>"""
    (out / "report.html").write_text(page)


def debug_layers(keras_model, calibration, top: int = 10) -> list[dict]:
    """TFLite's quantization debugger: the layers whose int8 output differs most from float."""
    from agegate.train.tfenv import import_tf

    from agegate.edge.quiet import quiet_fds

    tf, _ = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for x in calibration:
            yield [x[None]]

    conv.representative_dataset = rep
    with quiet_fds():
        dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=rep)
        dbg.run()
        import io

        buf = io.StringIO()
        dbg.layer_statistics_dump(buf)
    import csv as _csv

    rows = list(_csv.DictReader(buf.getvalue().splitlines()))
    for r in rows:
        rmse = float(r.get("mean_squared_error", 0) or 0) ** 0.5
        scale = float(r.get("scale", 0) or 0)
        r["rmse_over_scale"] = rmse / scale if scale else 0.0
    rows.sort(key=lambda r: -r["rmse_over_scale"])
    return [{"layer": r.get("tensor_name"), "op": r.get("op_name"), "rmse_over_scale": round(r["rmse_over_scale"], 4),
             "mean_squared_error": float(r.get("mean_squared_error", 0) or 0)} for r in rows[:top]]
