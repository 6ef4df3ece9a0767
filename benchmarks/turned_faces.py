"""How the model ages faces turned away from the camera, on the data sets' own photos.

A till camera sees buyers looking at the card reader or their bags, and the model learnt from photos that mostly
face the lens. Every photo of the given sets and split goes through the box's photo detector and crop and the
model, as `agegate eval --detect` does; the face's turn (`FaceBox.turn`: BlazeFace's nose tip off the eyes'
midpoint, in eye distances) sorts the photos into bins of |turn|. Per bin: MAE and bias, the MAE again with every
bin given the split's age mix (a bin's photos need not be of the same ages as another's), how often the model's 80 %
interval holds the true age, and at the model's operating point (per image) minors decided ok and 25+ asked for ID. The most turned photos are listed by
path for a person to look at. No camera: the photos as they are.

Per buyer: `--replay` reads an `agegate replay --json` result of the same split (every buyer's risk and photo)
and sorts its buyers by their photo's turn: a replayed buyer is one photo shown to the till camera for every
frame, so a buyer turned in it stays turned (a real buyer turns and turns back, and the box ages every frame). A
replay that recorded the box's own reading of each buyer's turn (`buyer_turns`) is sorted by that too
(`per_buyer_box_turn`): what the set-up view and the fleet report read.

    python -m agegate.benchmarks.turned_faces --split val --replay benchmarks/results/covers/none-val-800.json \\
        --replay benchmarks/results/covers/none-val-minors.json --out benchmarks/results/turned/turned-faces-val.json
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

from agegate.edge.bands import BAND_LABELS, band_index
from agegate.edge.challenge25 import BLOCKED_RISK
from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE

from .environment import cpu_info
from .eye_light_photos import relative

#: Upper edges of the |turn| bins (the last bin is open): 0.1 is about 11 degrees of yaw, 0.3 about 31
#: (`FaceBox.turn`'s docstring).
EDGES = (0.1, 0.2, 0.3)


def bin_labels(edges: tuple[float, ...] = EDGES) -> list[str]:
    lows = (0.0, *edges)
    return [f"{lo:g}-{hi:g}" for lo, hi in zip(lows, edges)] + [f"{edges[-1]:g}+"]


def bin_of(turns, edges: tuple[float, ...] = EDGES) -> np.ndarray:
    """The bin (index into `bin_labels`) of each |turn|: an edge belongs to the bin above it."""
    return np.searchsorted(np.asarray(edges), np.abs(np.asarray(turns, np.float64)), side="right")


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def summarize(rows: list[dict], max_risk: float | None, edges: tuple[float, ...] = EDGES, most: int = 50) -> dict:
    """`rows`: one per photo with a face and key points ({"path", "age", "estimate", "risk", "turn", ...}).

    `age_mix_mae` weighs a bin's MAE per age band by the bands' shares in all rows, so that bins are compared
    for the same people's ages; a band with no photo in a bin is left out and the weights renormalised
    (`bands_missing` says which)."""
    age = np.array([r["age"] for r in rows], np.float64)
    est = np.array([r["estimate"] for r in rows], np.float64)
    risk = np.array([r["risk"] for r in rows], np.float64) if rows and rows[0].get("risk") is not None else None
    which = bin_of([r["turn"] for r in rows], edges)
    band = band_index(age)
    mix = np.bincount(band, minlength=len(BAND_LABELS)) / max(len(rows), 1)
    err = est - age
    bins = []
    for b, label in enumerate(bin_labels(edges)):
        m = which == b
        n = int(m.sum())
        row: dict = {"turn": label, "photos": n, "share": _r(n / max(len(rows), 1), 4)}
        if n:
            per_band = [(mix[k], np.abs(err[m & (band == k)]).mean()) for k in range(len(BAND_LABELS))
                        if np.any(m & (band == k)) and mix[k] > 0]
            w = sum(p for p, _ in per_band)
            row |= {"mae": _r(np.abs(err[m]).mean()), "bias": _r(err[m].mean()), "mean_age": _r(age[m].mean(), 1),
                    "minors": int(np.sum(m & (age < MINOR_AGE))),
                    "age_mix_mae": _r(sum(p * e for p, e in per_band) / w) if w else None,
                    "bands_missing": [BAND_LABELS[k] for k in range(len(BAND_LABELS))
                                      if mix[k] > 0 and not np.any(m & (band == k))]}
            if risk is not None:  # a distribution model: is its spread as honest turned as facing?
                row |= {"coverage_80": _r(np.mean([rows[i]["in_80"] for i in np.nonzero(m)[0]])),
                        "width_80": _r(np.mean([rows[i]["width_80"] for i in np.nonzero(m)[0]]), 2)}
            if risk is not None and max_risk is not None:
                minors, adults = m & (age < MINOR_AGE), m & (age >= CHALLENGE_AGE)
                row |= {"minors_ok": int(np.sum(risk[minors] <= max_risk)), "adults": int(adults.sum()),
                        "adults_asked": _r(np.mean(risk[adults] > max_risk), 4) if adults.any() else None}
        bins.append(row)
    return {"photos": len(rows), "edges": list(edges), "max_risk": max_risk, "bins": bins,
            "most_turned": [{k: r[k] for k in ("path", "age", "estimate", "turn")}
                            for r in sorted(rows, key=lambda r: -abs(r["turn"]))[:most]]}


def by_source(rows: list[dict], max_risk: float | None, edges: tuple[float, ...] = EDGES) -> dict:
    split: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        split[r["source"]].append(r)
    return {s: {k: v for k, v in summarize(rs, max_risk, edges, most=0).items() if k != "most_turned"}
            for s, rs in sorted(split.items())}


def photo_key(path: str, keys: set[str]) -> str | None:
    """The `relative` path among `keys` that `path` (as a replay wrote it: any prefix before the set's folder)
    ends with."""
    parts = Path(path).parts
    return next(("/".join(parts[k:]) for k in range(len(parts)) if "/".join(parts[k:]) in keys), None)


def per_buyer(replay: dict, turns: dict[str, float], point: float, edges: tuple[float, ...] = EDGES,
              seen_by: str = "photo") -> dict:
    """A replay's buyers by their |turn|: per bin, adults asked for ID and minors decided ok at the operating point
    `point` (the replayed model's: the box decided `ok` when a buyer's fused risk was at most it), and buyers left
    undecided (`uncertain` or never seen, which count as asked: `BLOCKED_RISK`). `seen_by` "photo": the turn of the
    buyer's photo (`turns`: relative path -> turn, this probe's reading); "box": the box's own reading on the till
    frames (the replay's `buyer_turns`, BuyerDecision.turn: what the set-up view and the fleet report read).
    Buyers with no turn (no key points, never seen) are counted apart."""
    keys = set(turns)
    box_turns = replay.get("buyer_turns") if seen_by == "box" else None
    if seen_by == "box" and box_turns is None:
        raise ValueError("this replay has no buyer_turns (made before the box recorded them): read the photos' turns")
    rows, passed = [], []
    for i, ((age, risk), path) in enumerate(zip(replay["buyer_risks"], replay["buyer_paths"])):
        k = photo_key(path, keys)
        t = box_turns[i] if box_turns is not None else None if k is None else turns[k]
        rows.append((age, risk, None if t is None else abs(t)))
        if age < MINOR_AGE and risk <= point:
            passed.append({"path": k or path, "age": age, "risk": risk, "turn": t})
    unknown = sum(t is None for _, _, t in rows)
    bins = []
    seen = [(a, r, t) for a, r, t in rows if t is not None]
    which = bin_of([t for _, _, t in seen], edges)
    for b, label in enumerate(bin_labels(edges)):
        inside = [(a, r) for (a, r, _), w in zip(seen, which) if w == b]
        adults = [r for a, r in inside if a >= CHALLENGE_AGE]
        minors = [r for a, r in inside if a < MINOR_AGE]
        bins.append({"turn": label, "buyers": len(inside), "undecided": sum(r >= BLOCKED_RISK for _, r in inside),
                     "adults": len(adults), "adults_asked": sum(r > point for r in adults),
                     "minors": len(minors), "minors_ok": sum(r <= point for r in minors)})
    return {"split": replay.get("split"), "operating_point": point, "turn_seen_by": seen_by,
            "buyers": len(rows), "no_turn": unknown, "bins": bins, "minors_passed": passed}


def plot(result: dict, path: Path) -> None:
    """Left, per photo: MAE at the split's age mix per |turn| bin and set (each point labelled with its photos).
    Right, per buyer (when replays were given): 25+ asked for ID and minors decided ok per bin, each replay
    apart, each point labelled with k of n."""
    from agegate.edge.figures import pyplot, save_figure

    fig, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4))
    for name, s in [("all", result), *result["by_source"].items()]:
        bins = [b for b in s["bins"] if b["photos"]]
        xs = [b["turn"] for b in bins]
        left.plot(xs, [b["age_mix_mae"] for b in bins], marker="o", label=name)
        for x, b in zip(xs, bins):
            left.annotate(str(b["photos"]), (x, b["age_mix_mae"]), fontsize=6, xytext=(3, 3),
                          textcoords="offset points")
    left.set_title(f"per photo, {result['split']}: MAE at the split's age mix (labels: photos)", fontsize=9)
    left.set_ylabel("years")
    for f, pb in result["per_buyer"].items():  # apart: one replay's buyers may be in another (its minors)
        for k, n, what in (("adults_asked", "adults", "25+ asked"), ("minors_ok", "minors", "minors ok")):
            pts = [(b["turn"], b[k] / b[n], f"{b[k]}/{b[n]}") for b in pb["bins"] if b[n]]
            if not pts:
                continue
            right.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=f"{Path(f).stem}: {what}")
            for lab, v, text in pts:
                right.annotate(text, (lab, 100 * v), fontsize=6, xytext=(3, 3), textcoords="offset points")
    right.set_title(f"per buyer, {result['split']} replays (labels: k/n buyers)", fontsize=9)
    right.set_ylabel("% of buyers")
    right.set_yscale("symlog", linthresh=1)
    for ax in (left, right):
        ax.set_xlabel("|turn| (nose off the eyes' midpoint, eye distances; 0.1 ~ 11 deg, 0.3 ~ 31 deg)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


@click.command()
@click.option("--model", "model_path", default="edge/assets/default_model.tflite", show_default=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", multiple=True, default=("../shared/datasets/utkface", "../shared/datasets/aaf"),
              show_default=True, help="Data set folders; repeat.")
@click.option("--split", default="val", show_default=True)
@click.option("--limit", type=int, default=None, help="At most this many photos per set (seeded sample).")
@click.option("--most", default=50, show_default=True, help="List this many of the most turned photos.")
@click.option("--replay", "replays", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An `agegate replay --json` result of this model on this split: its buyers by their photo's "
                   "turn. Repeat for several.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON; a .png beside it.")
def main(model_path, data, split, limit, most, replays, out):
    from agegate.convert.evaluate import model_metadata, predict, select_records
    from agegate.edge.age_head import covers, interval

    point = model_metadata(model_path).operating_point
    max_risk = None if point is None else point.max_risk
    replayed = {f: json.loads(Path(f).read_text()) for f in replays}
    for f, replay in replayed.items():  # before the photos are read: a wrong file is said at once
        if replay.get("split") != split or Path(str(replay.get("model"))).name != Path(model_path).name:
            raise click.BadParameter(f"{f} is a replay of {replay.get('model')} on {replay.get('split')!r}, not of "
                                     f"{model_path} on {split!r}: its buyers' photos and decisions would not be "
                                     f"these", param_hint="--replay")
        if max_risk is None:
            raise click.BadParameter(f"{model_path} has no operating point: per-buyer decisions need one",
                                     param_hint="--replay")
    rows, no_face, no_points = [], 0, 0
    for d in data:  # as `agegate eval --detect`: the photo detector, the box's crop, the model's own test-time views
        source = Path(d).name
        p = predict(model_path, select_records(d, "auto", None, split, limit), detect=True, desc=f"{source} {split}")
        no_face += len(p.skipped)
        risks = p.risk
        if p.probs is not None:
            inside = covers(p.y_true, p.probs, p.head, 0.8)
            lo, hi = interval(p.probs, p.head, 0.8)
        for i, (path, face) in enumerate(zip(p.paths, p.faces)):
            if face.turn is None:  # the Haar fallback gives no key points
                no_points += 1
                continue
            rows.append({"path": relative(path, d), "source": source, "age": float(p.y_true[i]),
                         "estimate": round(float(p.y_pred[i]), 2), "turn": round(face.turn, 4),
                         "risk": None if risks is None else round(float(risks[i]), 5),
                         "in_80": None if p.probs is None else bool(inside[i]),
                         "width_80": None if p.probs is None else float(hi[i] - lo[i] + 1)})
    result = {"model": model_path, "data": list(data), "split": split, "limit": limit, "no_face": no_face,
              "no_key_points": no_points, "cpu": cpu_info(), **summarize(rows, max_risk, most=most),
              "by_source": by_source(rows, max_risk), "per_buyer": {}, "per_buyer_box_turn": {}}
    turns = {r["path"]: r["turn"] for r in rows}
    for f, replay in replayed.items():
        result["per_buyer"][f] = per_buyer(replay, turns, max_risk)
        if replay.get("buyer_turns") is not None:
            result["per_buyer_box_turn"][f] = per_buyer(replay, turns, max_risk, seen_by="box")
    click.echo(f"{result['photos']} photos with key points ({no_face} no face, {no_points} without key points); "
               f"operating point {max_risk}")
    for name, s in [("all", result), *result["by_source"].items()]:
        click.echo(name)
        for b in s["bins"]:
            if not b["photos"]:
                continue
            asked = "" if b.get("adults_asked") is None else f", 25+ asked {b['adults_asked']:.1%} of {b['adults']}"
            spread = "" if b.get("coverage_80") is None else (f"; 80 % interval holds {b['coverage_80']:.1%}, "
                                                               f"{b['width_80']:.1f} years wide")
            click.echo(f"  |turn| {b['turn']:8s} {b['photos']:5d} ({b['share']:.1%}) MAE {b['mae']:.2f} "
                       f"(at the age mix {b['age_mix_mae']:.2f}) bias {b['bias']:+.2f} mean age {b['mean_age']:.1f}; "
                       f"minors ok {b.get('minors_ok', '-')} of {b['minors']}{asked}{spread}")
    for f, pb in [*result["per_buyer"].items(), *result["per_buyer_box_turn"].items()]:
        click.echo(f"per buyer by the {pb['turn_seen_by']}'s turn, {f} ({pb['buyers']} buyers, {pb['no_turn']} "
                   f"without a turn)")
        for b in pb["bins"]:
            click.echo(f"  |turn| {b['turn']:8s} {b['buyers']:5d} buyers, {b['undecided']} undecided; 25+ asked "
                       f"{b['adults_asked']} of {b['adults']}, minors ok {b['minors_ok']} of {b['minors']}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        plot(result, Path(out).with_suffix(".png"))


if __name__ == "__main__":
    main()
