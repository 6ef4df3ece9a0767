"""`agegate replay`: per-buyer decisions of the real box pipeline on labelled photos (see replay.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from agegate.edge.cli_types import json_option, threads_option
from agegate.edge.config import bounds
from agegate.edge.detect import DETECTORS, DetectorOptions
from agegate.edge.pipeline import BoxOptions
from agegate.train.cli_options import SPLIT_CHOICE, format_option

from .covers import Cover
from .report_text import share_pct


def _range(text: str, unit: str = "frames", example: str = "0..15") -> tuple[int, int]:
    """'A..B' or 'A' -> (A, B), both included."""
    m = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", text.strip())
    if not m:
        raise click.BadParameter(f"{text!r}: give A..B ({unit}), e.g. {example}, or one number")
    a, b = int(m[1]), int(m[2] if m[2] is not None else m[1])
    if b < a:
        raise click.BadParameter(f"{text!r}: the range must not be empty")
    return a, b


def _gap(ctx, param, text: str) -> tuple[int, int]:
    return _range(text)


def _ages(ctx, param, text: str | None) -> tuple[int, int] | None:
    return None if text is None else _range(text, "years", "0..17")


#: Face sizes a replay can place: the patch around the face (1.6 x its box) must fit the 480 px frame height.
FACE_PX_LIMITS = (16, 300)


def _face_px(ctx, param, text: str) -> tuple[int, int]:
    a, b = _range(text, "pixels", "60..110")
    lo, hi = FACE_PX_LIMITS
    if a < lo or b > hi:
        raise click.BadParameter(f"{text!r}: face sizes must lie in {lo}..{hi} pixels (a 640x480 frame)")
    return a, b


@click.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--model", "model_path", type=click.Path(exists=True), help="A .tflite [the shipped model].")
@format_option
@click.option("--split", type=SPLIT_CHOICE, default="test", show_default=True,
              help="Split of each set; a set without splits is replayed whole.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N buyers in all (a seeded sample).")
@click.option("--gap", default="0..15", show_default=True, callback=_gap,
              help="Empty frames between buyers, drawn from A..B (0: the next steps in as the last leaves).")
@click.option("--ages", callback=_ages,
              help="Only photos labelled with an age in A..B (years, both included) become buyers, e.g. 0..17 "
              "to count minors passed over every minor of a split rather than a sample's few.")
@click.option("--frames", type=click.IntRange(min=1), default=20, show_default=True, help="Frames per buyer.")
@click.option("--queue", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="The share of buyers who wait in view behind the buyer before them (smaller, beside and partly "
              "hidden, from a random frame of that visit) and step up as they leave: a queue at the till. 1: "
              "everyone waits; 0: one buyer in view at a time.")
@click.option("--face-px", default="110..190", show_default=True, callback=_face_px,
              help="Side of each buyer's face box in the 640x480 frame, drawn per visit from A..B: smaller is a "
              f"camera further away (the box ages faces of at least {BoxOptions.min_quality_face} px).")
@click.option("--detector", type=click.Choice(DETECTORS), default=DetectorOptions.detector, show_default=True,
              help="The box's face detector (box.toml detector.name): full range finds smaller faces, further away.")
@click.option("--refine-below", type=click.FloatRange(*bounds("detector", "refine_below")),
              default=DetectorOptions.refine_below,
              show_default=True,
              help="Detect a face narrower than this share of the frame's longer side again on a region around it "
              "at full resolution (box.toml detector.refine_below; 0: never). 0.2 is a face under 128 px.")
@click.option("--refine-margin", type=click.FloatRange(*bounds("detector", "refine_margin")),
              default=DetectorOptions.refine_margin, show_default=True,
              help="A face whose first box is under this many times --refine-below gets the second look too, and "
              "keeps what it finds when that is under the line (box.toml detector.refine_margin; 1: the line alone, "
              "the box; 1.25 was measured twice and not adopted: benchmarks/results/camera-refine-margin-draws/).")
@click.option("--min-score", type=click.FloatRange(*bounds("detector", "min_score")), default=DetectorOptions.min_score,
              show_default=True,
              help="The detector's score a face must reach (box.toml detector.min_score): lower finds more far faces, "
              "and more false ones.")
@click.option("--small-face-score", type=click.FloatRange(*bounds("detector", "small_face_score")),
              default=DetectorOptions.small_face_score,
              show_default=True,
              help="A face under --refine-below is kept from this score if the second look finds it at --min-score "
              "(box.toml detector.small_face_score; --min-score or above: off).")
@click.option("--cover", type=click.Choice([c.value for c in Cover]), default=Cover.NONE.value, show_default=True,
              help="What every buyer wears over the face, drawn on their photo from its eye points (covers.py): "
              "sunglasses hide the eyes, tint darkens them (lenses letting half the light through), mask the nose, "
              "mouth and chin. The box checks the eyes (--min-eye-light), not for a mask.")
@click.option("--grey", is_flag=True,
              help="Every frame grey, as a monochrome (night-mode) camera gives it: the same buyers, poses and "
              "noise as without, the colour taken away (README, 'A monochrome camera').")
@click.option("--min-eye-light", type=click.FloatRange(0.0, 1.0), default=BoxOptions.min_eye_light, show_default=True,
              help="The box's sunglasses check: a face whose eyes read darker than this share of its skin is not "
              "aged (reason eyes_hidden; tracking.eye_light). 0: off, as boxes before 2026-12-06.")
@threads_option
@click.option("--seed", type=int, default=0, show_default=True, help="Which buyers are drawn and how they move.")
@click.option("--draws", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Replay the same buyers N times (seeds --seed, +1, ...: other order, gaps, poses and camera noise) "
              "and report each draw and their mean, where a minor decided ok in one draw of three counts a third "
              "(as `agegate calibrate --draws`); N times the minutes. --png and --curve show the first draw.")
@json_option
@click.option("--png", type=click.Path(dir_okay=False), help="Write a chart of outcomes by age band.")
@click.option("--curve", type=click.Path(dir_okay=False),
              help="Distribution models: write the per-buyer Challenge-25 trade-off (minors ok vs 25+ asked, one "
              "point per P(under 25) threshold) as a PNG, the box's decisions here and the operating point's "
              "where it was chosen marked.")
def replay(data, model_path, fmt, split, limit, gap, ages, frames, queue, face_px, detector, refine_below, refine_margin,
           min_score, small_face_score, cover, grey, min_eye_light, threads, seed, draws, as_json, png, curve):
    """Replay labelled photos as buyers at a till through the box pipeline; score one decision per buyer.

    \b
    Reports: decided share, MAE of fused ages, minors decided ok, 25+ asked for ID,
    merged buyers (no decision of their own), split buyers, decisions with nobody at
    the till, reasons for uncertain, what the till was told at each buyer's last
    frame, frames per second and the cost of an empty frame; with --queue, how the
    buyers who waited fared. Example:
      agegate replay ../shared/datasets/utkface ../shared/datasets/aaf --limit 1000 --gap 0..15
    """
    import numpy as np

    from agegate.edge.default_model import resolve_model
    from agegate.edge.errors import UsageError
    from agegate.edge.runtime import AgeModel

    from .evaluate import read_splits, splits_label
    from .replay import ReplayOptions, over_draws, replay_draws

    splits = read_splits(list(data), fmt, None, split)  # a set without splits is taken whole, and says so
    records = [r for s in splits for r in s.records]
    if ages:
        records = [r for r in records if ages[0] <= r.age <= ages[1]]
        if not records:
            raise UsageError(f"no photo in {splits_label(splits)} is labelled with an age in {ages[0]}..{ages[1]}")
    if limit and limit < len(records):
        pick = np.random.default_rng(seed).permutation(len(records))[:limit]
        records = [records[i] for i in sorted(pick)]
    model = AgeModel(resolve_model(model_path), threads=threads)
    if curve:  # before minutes of replay, not after
        from .calibrate import curve_needs_distribution

        curve_needs_distribution(model.meta)
    detector_options = DetectorOptions(detector=detector, refine_below=refine_below, refine_margin=refine_margin,
                                       min_score=min_score, small_face_score=small_face_score)
    summaries = replay_draws(model, records, BoxOptions(threads=threads, detector=detector_options,
                                                        min_eye_light=min_eye_light), draws,
                             ReplayOptions(frames, gap, seed, face_px=face_px, cover=Cover(cover), queue=queue,
                                           grey=grey),
                             show=True)
    from agegate.benchmarks.environment import environment
    from agegate.edge.runtime import runtime_version

    result = summaries[0]
    result.update(kind="replay", model=str(model.path), data=list(data), split=split, seed=seed, gap=list(gap),
                  replayed_from=splits_label(splits),
                  frames_per_buyer=frames, ages=list(ages) if ages else None, face_px=list(face_px), queue=queue,
                  detector=detector,
                  refine_below=refine_below, refine_margin=refine_margin, min_score=min_score,
                  small_face_score=small_face_score, cover=cover, grey=grey,
                  min_eye_light=min_eye_light,
                  environment=environment(model.runtime, runtime_version(model.runtime), "xnnpack"))
    if draws > 1:  # the other draws whole (their rows read at another point as the first's), and the mean
        result.update(more_replays=[{**s, "seed": seed + d} for d, s in enumerate(summaries[1:], 1)],
                      over_draws=over_draws(summaries))
    if png:
        _chart(result, Path(png))
    if curve:
        _curve(result, model.meta.operating_point, Path(curve))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(render(result))


def render(r: dict) -> str:
    only = f"; labelled {r['ages'][0]}..{r['ages'][1]} only" if r.get("ages") else ""
    only += f"; {r['queue']:.0%} of buyers waiting in a queue" if r.get("queue") else ""
    only += f"; draw 1 of {r['over_draws']['draws']} (seed {r['seed']})" if r.get("over_draws") else ""
    where = r.get("replayed_from") or f"{', '.join(r['data'])} [{r['split']}]"  # a result from before: split asked
    lines = [
        f"{r['buyers']} buyers from {where}, {r['frames_per_buyer']} frames each, "
        f"gaps {r['gap'][0]}..{r['gap'][1]} frames, faces {r['face_px'][0]}..{r['face_px'][1]} px ({r['detector']}){only}; "
        f"model {Path(r['model']).name}",
        f"  decided (ok or id_check)  {share_pct(r['decided_share'])}",
        f"  merged (no own decision)  {r['merged']} ({share_pct(r['merged_share'])}); no decision at all {r['missed']}",
        f"  split (more than one)     {r['split_buyers']} ({share_pct(r['split_share'])})",
        f"  decided, nobody there     {r.get('false_decisions', 0)} (a false face on the empty till)",
        f"  MAE of fused ages         {r['mae']}  (bias {r['bias']})",
        f"  counted in another band   {_counting(r.get('band_shares'))}",
        f"  minors decided ok         {r['minors_decided_ok']} of {r['minors']} ({share_pct(r['minors_ok_share'])})",
        f"  25+ asked for ID          {r['adults_asked']} of {r['adults_25plus']} "
        f"({share_pct(r['adults_asked_share'])})",
        f"  uncertain because         {', '.join(f'{k} {n}' for k, n in r['uncertain_reasons'].items()) or '-'}",
        f"  answer after (camera)     p50 {r['seconds_to_decision_p50']} s, p95 {r['seconds_to_decision_p95']} s; "
        f"{share_pct(r['decided_while_shown_share'])} while the buyer was still shown",
        f"  the till told (last frame) another's decision for {r['till_answers_for_someone_else']} buyer(s); "
        f"not decided yet for {r['till_answers_provisional']}",
        f"  {r['fps']} frames/s; frame p50: empty {r['empty_frame_p50_ms']} ms, with a face "
        f"{r['face_frame_p50_ms']} ms",
    ]
    q = r.get("by_queue")
    if q:
        for name, g in (("waited in view", q["queued"]), ("came alone", q["not_queued"])):
            lines.append(f"  {name:16s} {g['buyers']} buyers: decided {g['decided']}, merged {g['merged']}, split "
                         f"{g['split']}, MAE {g['mae']}, minors ok {g['minors_decided_ok']} of {g['minors']}, "
                         f"25+ asked {g['adults_asked']} of {g['adults_25plus']}")
        lines.append(f"  decided while still waiting behind the buyer before: {q['decided_while_waiting']}")
    for d in r.get("more_replays", []):
        lines.append(f"  draw with seed {d['seed']}:  decided {share_pct(d['decided_share'])}, merged {d['merged']}, "
                     f"split {d['split_buyers']}, MAE {d['mae']}, minors ok {d['minors_decided_ok']} of {d['minors']}, "
                     f"25+ asked {d['adults_asked']} of {d['adults_25plus']}")
    o = r.get("over_draws")
    if o:
        lines.append(f"  over the {o['draws']} draws (means): decided {share_pct(o['decided_share'])}, minors ok "
                     f"{o['minors_decided_ok']:g} of {o['minors']} ({share_pct(o['minors_ok_share'])}), 25+ asked "
                     f"{o['adults_asked']:g} of {o['adults_25plus']} ({share_pct(o['adults_asked_share'])})")
    if r["unplaced"]:
        lines.append(f"  {len(r['unplaced'])} photo(s) not placed (no face found; --json lists them)")
    return "\n".join(lines)


def _counting(shares: dict | None) -> str:
    """How far the buyers' counts by age band (the marketing use) are from the true ones."""
    if not shares:
        return "-"
    w = shares["worst"]
    return (f"{shares['total_variation']:.1%} of buyers, net (furthest {w['band']}: "
            f"{100 * w['difference']:+.1f} points of the counted share)")


def _curve(r: dict, op, path: Path) -> None:
    """The per-buyer trade-off of this replay (its buyers' fused P(under 25), every threshold), marked where the
    box's decisions fell here (uncertain and merged buyers counted as the box counts them) and where the
    operating point was measured per buyer when it was chosen."""
    from .calibrate import op_markers, plot_tradeoff

    here = (r["adults_asked_share"], r["minors_ok_share"])
    marks = [("the box's decisions here", *here)] if None not in here else []
    marks += op_markers(op, " (where chosen)", keys=("per_buyer",))
    plot_tradeoff(path, [], r.get("risk_curve", []), op, marks)


def _chart(r: dict, path: Path) -> None:
    from agegate.edge.figures import save_figure

    save_figure(draw_replay(r), path)


def draw_replay(r: dict):
    """`replay --png`: per-buyer MAE by band, and the shares the replay is judged by, each with its count."""
    from agegate.edge.figures import pyplot

    bands = r["bands"]
    fig, ax = pyplot().subplots(1, 2, figsize=(10, 3.6))
    names = list(bands)
    ax[0].bar(names, [bands[b]["mae"] for b in names], color="#3b6ea8")
    ax[0].set_title("per-buyer MAE by true age band")
    ax[0].set_ylabel("years")
    ax[0].tick_params(axis="x", rotation=45)
    # each share of whom it counts (minors, 25+ adults, every buyer), with its count on the bar: a share of 0 drew
    # nothing, and the axis said "% of buyers" of all four
    shares = (("minors ok\n(of minors)", r["minors_decided_ok"], r["minors"]),
              ("25+ asked\n(of 25+)", r["adults_asked"], r["adults_25plus"]),
              ("merged\n(of buyers)", r["merged"], r["buyers"]), ("split\n(of buyers)", r["split_buyers"], r["buyers"]))
    bars = ax[1].bar([what for what, _, _ in shares], [100 * k / n if n else 0 for _, k, n in shares],
                     color=["#c0392b", "#e67e22", "#7f8c8d", "#95a5a6"])
    ax[1].bar_label(bars, [f"{k} of {n}" for _, k, n in shares], fontsize=8)
    ax[1].margins(y=0.15)
    ax[1].set_ylabel("% of those it counts")
    ax[1].set_title(f"{r['buyers']} buyers, gaps {r['gap'][0]}..{r['gap'][1]}")
    return fig
