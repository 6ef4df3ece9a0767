"""`agegate qa`: compare a quantized model with its float parent, image by image.

A model ships only if every gate passes: the business MAE gate, the drift from
its float parent, the share of ID-check decisions that flip, and a collapse check
(a quantized regression head that clips its range or outputs a constant, as in
tensorflow issue 47068, must fail even if its MAE happens to look tolerable).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agegate.edge.age_head import AgeHead
from agegate.edge.bands import band_labels
from agegate.edge.challenge25 import OperatingPoint, binomial_lower, rates, tradeoff_curve
from agegate.edge.contracts import CHALLENGE_AGE
from agegate.edge.metadata import ModelMetadata

from .calibrate import buyer_matrix, per_buyer_curve
from .evaluate import Predictions
from .metrics import age_metrics, group_mae
from .replay import summary_figures


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


def data_label(d: dict) -> str:
    """`utkface [test]`: one set of the data a QA verdict was judged on (an entry of QAReport.data, as report.json
    has it), as the report, its notes and a bundle's manifest name it."""
    return f"{d.get('name')} [{d.get('split')}]"


@dataclass
class QAReport:
    float_model: str
    quantized_model: str
    n: int
    float_metrics: dict
    quantized_metrics: dict
    comparison: dict
    gates: list[GateResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a reader must know to trust the verdict
    # A distribution model's Challenge-25 trade-off on the QA data: "per_image" (the curve over every
    # P(under 25) threshold), and with a replay "per_buyer" (the replay's figures and its curve).
    challenge25: dict = field(default_factory=dict)
    # What was judged, by content: `bundle build` takes this report only for these bytes of the model and its
    # metadata sidecar (the operating point lives there), not for another file of the same name.
    quantized_sha256: str = ""
    quantized_metadata_sha256: str = ""
    # What it was judged on: each set's name, path, the split it gave (a set without splits: all of it), images and
    # the --limit (a seeded subset: a quick look), so a bundle's QA report says which data its verdict holds for.
    data: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["verdict"] = "PASS" if self.passed else "FAIL"
        return d


FLOAT_QUANTIZATIONS = ("none", "float32", "float16")


def check_float_parent(float_model: str, quantized: str, fmeta: ModelMetadata) -> None:
    """A gate against the wrong parent proves nothing: refuse one that is not float, is the model itself,
    or was recovered from it (`agegate recover`). `fmeta`: the float model's metadata."""
    from agegate.edge.errors import UsageError
    from agegate.edge.metadata import sha256_file

    from .evaluate import is_tflite

    fq = fmeta.quantization
    recovered = fmeta.extra.get("recovered_from") or {}
    if recovered.get("sha256") and recovered["sha256"] == sha256_file(quantized):
        raise UsageError(f"--float {float_model} was recovered from {quantized} itself (`agegate recover`): it "
                         f"is that file's weights, not its parent. Gate a model converted from the recovered one")
    if fq not in FLOAT_QUANTIZATIONS:
        raise UsageError(f"--float {float_model} is a {fq} model, not a float parent; give the run folder or a "
                         f"float32 .tflite it was converted from")
    if Path(float_model).resolve() == Path(quantized).resolve():
        raise UsageError(f"--float and --quantized are the same file ({quantized})")
    if is_tflite(float_model) and is_tflite(quantized) and sha256_file(float_model) == sha256_file(quantized):
        raise UsageError(f"--float {float_model} and --quantized {quantized} are the same model (identical bytes); "
                         f"QA compares a quantized model with the float model it came from")


def parent_head(fmeta: ModelMetadata, qmeta: ModelMetadata) -> AgeHead | None:
    """The head to read the float parent's outputs with: its quantized child's, for distribution models.

    `agegate calibrate` fits the child's temperature; the parent keeps the one it was trained or averaged
    with. P(under 25) at two temperatures differs with no rounding at all, so flips counted between them
    measure calibration, not quantization (the clean-labels candidate: parent at 0.9049, child at 0.9808;
    1.95 % of val decisions flipped, 1.03 % with one temperature; MODEL_HISTORY.md). The point estimate is
    the distribution's mean at temperature 1 either way. A regression parent keeps its own (None)."""
    from agegate.edge.errors import UsageError

    fh, qh = fmeta.head, qmeta.head
    if (fh.kind, fh.n_bins, fh.min_age) != (qh.kind, qh.n_bins, qh.min_age):
        raise UsageError(f"the float parent's head ({fh.kind.value}, {fh.n_bins} outputs) is not its quantized "
                         f"child's ({qh.kind.value}, {qh.n_bins} outputs): they are not parent and child")
    return qh if qh.is_distribution else None


def decision_flips(fp: Predictions, qp: Predictions, keep: list[int], qkeep: list[int], f: np.ndarray,
                   q: np.ndarray, id_threshold: float) -> tuple[float, str]:
    """(share of images whose ID check differs, the rule compared). The rule is the one the box applies
    to the quantized model: its operating point on P(under 25) for a calibrated distribution model (both
    models' risks at that point), else the age against id_threshold."""
    op = qp.operating_point
    if op is not None and qp.probs is not None and fp.probs is not None:
        fr, qr = fp.risk[keep], qp.risk[qkeep]
        return float(np.mean((fr > op.max_risk) != (qr > op.max_risk))), f"P(under 25) > {op.max_risk:.3f}"
    return float(np.mean((f < id_threshold) != (q < id_threshold))), f"age < {id_threshold:g}"


def parent_notes(fmeta: ModelMetadata) -> list[str]:
    """What the report must say about the float parent (its metadata): a recovered one already carries int8
    weight rounding, so the drift measured is that of the activations (and of any weights re-quantized
    differently)."""
    rec = fmeta.extra.get("recovered_from")
    if not rec:
        return []
    return [f"the float parent was recovered from {rec.get('file')} ({rec.get('quantization')}, sha256 "
            f"{str(rec.get('sha256'))[:12]}) by `agegate recover`: its weights carry that file's int8 rounding, "
            f"so drift and flips here measure activation rounding, not the whole of quantization"]


def compare(fp: Predictions, qp: Predictions, gates: Gates, float_model: str, quant_model: str,
            per_set: dict[str, Predictions] | None = None, replays: list[dict] | None = None) -> QAReport:
    """Every gate of the quantized predictions `qp` against the float ones `fp` (the same images); `per_set`
    adds the business gate per population, `replays` (the QA data replayed as buyers through the box with the
    quantized model: one summary per draw of the same buyers, `replay.replay_draws`) the per-buyer target of its
    operating point."""
    keep, qkeep = fp.pair(qp)
    y, f, q = fp.y_true[keep], fp.y_pred[keep], qp.y_pred[qkeep]
    fm, qm = age_metrics(y, f), age_metrics(y, q)
    diff = np.abs(q - f)
    flips, rule = decision_flips(fp, qp, keep, qkeep, f, q, gates.id_threshold)
    r = float(np.corrcoef(f, q)[0, 1]) if np.std(q) > 0 and np.std(f) > 0 else 0.0
    std_ratio = float(np.std(q) / np.std(f)) if np.std(f) > 0 else 0.0
    # per band: both models' MAE from age_metrics (the one per-band computation), plus how far apart they are
    diff_by_band = group_mae(np.zeros_like(diff), diff, band_labels(y))
    bands = {b: {"n": v["n"], "float_mae": v["mae"], "quantized_mae": qm["bands"][b]["mae"],
                 "mean_abs_diff": diff_by_band[b]["mae"]}
             for b, v in fm["bands"].items() if v["n"]}
    comp = {"drift": round(qm["mae"] - fm["mae"], 4), "mean_abs_diff": round(float(diff.mean()), 4),
            "p95_abs_diff": round(float(np.percentile(diff, 95)), 4),
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
                   f"share of images whose ID check ({rule}) differs between the models"),
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
    op = qp.operating_point if qp.probs is not None else None
    per_buyer = None if not replays else buyer_gate(op, replays)
    if per_buyer is not None:
        rep.gates.append(per_buyer)
    elif op is not None and op.target_minors_ok_buyer is not None:
        rep.notes.append(f"the per-buyer target the operating point carries ({op.target_minors_ok_buyer:.1%} of "
                         f"minors decided ok) was not checked: "
                         + ("no minor was replayed" if replays else
                            "`--buyers N` replays every minor of the QA data and N others through the box"))
    elif op is not None and replays:
        rep.notes.append("the operating point carries no per-buyer target (calibrated per image only): the replay "
                         "gives the per-buyer curve, and no gate")
    rep.challenge25 = challenge25_figures(qp, replays)
    return rep


def _target_gate(label: str, r: dict, target: float, max_risk: float, unit: str, draws: int = 1) -> GateResult:
    """Whether `r` (challenge25.rates at the operating point) shows the target missed: only when even the
    one-sided 90 % lower bound of the minors' share decided ok is above it. (calibrate chose the point so
    that the upper bound on val is under it; a share one minor over the target on a few hundred minors is
    no evidence of a miss, a share well over it is.) The share itself is the gate's value, beside the bound.
    Over several draws a minor passing in one of three counts a third (challenge25.rates); the bound counts
    the whole people that makes, rounded down: only minors who surely pass are evidence of a miss."""
    passed = r["minors_ok"] * r["n_minors"]
    whole = int(np.floor(passed + 1e-9))
    lower = binomial_lower(whole, r["n_minors"])
    count = f"{whole}" if abs(passed - whole) < 1e-9 else f"{passed:.2f}"
    over = f" over {draws} draws" if draws > 1 else ""
    return GateResult(label, lower <= target, round(r["minors_ok"], 4), f"90 % lower bound <= {target}",
                      f"minors decided ok per {unit} at P(under 25) > {max_risk:.3f}: {count} of {r['n_minors']}"
                      f"{over} (lower bound {lower:.4f}); it asks {r['adults_asked']:.1%} of 25+ for ID")


def operating_point_gates(qp: Predictions, per_set: dict[str, Predictions] | None = None) -> list[GateResult]:
    """A calibrated model must meet the per-image target it carries on the QA data too, on every set."""
    op = qp.operating_point
    if qp.probs is None or op is None:
        return []
    # A point written with `calibrate --allow-unshown`: chosen on too few minors to show its own target.
    out = [GateResult(f"operating_point_shown[{where.replace('_', ' ')}]", False, m.get("n_minors"),
                      "target_shown where it was chosen",
                      f"chosen on {m.get('n_minors')} minor(s) ({op.chosen_on or 'unrecorded'}), too few to show its "
                      f"target even with none passing: calibrate on the val splits of every set")
           for where, m in sorted((op.measured or {}).items()) if isinstance(m, dict) and m.get("target_shown") is False]
    for name, p in [("", qp)] + sorted((per_set or {}).items()):
        r = rates(p.risk, p.y_true, op.max_risk)
        if r["minors_ok"] is not None:
            label = f"operating_point[{name}]" if name else "operating_point"
            out.append(_target_gate(label, r, op.target_minors_ok_image, op.max_risk, "image"))
    return out


def buyer_gate(op: OperatingPoint | None, replays: list[dict]) -> GateResult | None:
    """The per-buyer target the operating point carries, on replays of the QA data through the box (the box
    deciding by that point; one summary per draw of the same buyers, each minor counted by the share of draws
    they pass in, as `calibrate --draws` chose it): None when the model carries no per-buyer target or no minor
    was replayed. Uncertain and never-seen buyers cannot pass (challenge25.BLOCKED_RISK), as in calibrate."""
    if op is None or op.target_minors_ok_buyer is None or any("buyer_risks" not in d for d in replays):
        return None
    ages, risks = buyer_matrix(replays)
    r = rates(risks, ages, op.max_risk)
    if r["minors_ok"] is None:
        return None
    return _target_gate("operating_point[per buyer]", r, op.target_minors_ok_buyer, op.max_risk, "buyer",
                        len(replays))


def challenge25_figures(qp: Predictions, replays: list[dict] | None) -> dict:
    """The trade-off curves of a distribution model on the QA data, for the report and --json: per image, and
    per buyer with the first draw's figures (its bulky per-buyer rows left out) and the curve over every draw."""
    if qp.probs is None:
        return {}
    out: dict = {"per_image": {"curve": tradeoff_curve(qp.risk, qp.y_true)}}
    if replays:
        out["per_buyer"] = {**summary_figures(replays[0]), "draws": len(replays), "curve": per_buyer_curve(replays)}
    return out
