"""How much evidence should the box gather before it decides? A buyer is decided once `decide_after` (10) of
their face frames have been aged, on the last `window` (15) of them; both were set at the first release
without a measurement, as were the policy's two guards on thin evidence: a track that ends with fewer than
`min_frames` (5) good frames, or whose good frames' ages spread over more than `max_spread` (12) years, is
decided `uncertain` (the cashier asks for ID). `--min-frames` and `--spreads` vary those one at a time at the
box's own pair. Fewer frames answer the till sooner; more frames average more views of the face into
the buyer's risk, which may separate minors from adults better (fewer adults asked at the same minors passed).

One replay of calibrate's buyers (every minor of the split and `--buyers` others, seeded; `--exclude` as
calibrate's) records every face frame with its estimate, decisions held to the end of each track
(`quality_gate_probe.recorded_replay`). Then, per `decide_after:window` pair, each track's decision is re-made
by the box's own `Track` and `decide` at the box's blur limit, and the pair gets its own operating point as
`agegate calibrate` chooses it. Reported per pair: minors ok and 25+ asked per buyer at that point, buyers
uncertain, MAE of the decided, and the face frames seen when the decision fell (p50, p95; the replay's camera
gives 15 frames a second). The box's own settings give the box's figures (`fusion_probe.py` replays them with
the box as it is).

A replayed buyer is one photo shown for 20 frames with camera changes (sway, zoom, noise, JPEG, motion blur):
more frames average those, not new views of the face as a real till's camera gives over several seconds, so
what more frames gain here is a lower bound; a pair above 20 frames is the track's end for most buyers.

    python -m agegate.benchmarks.evidence_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val --buyers 800 \\
        --exclude convert/label-errors-val.txt --out benchmarks/results/evidence-probe/val.json
"""
from __future__ import annotations

from dataclasses import replace

import click

from agegate.edge.config import BoxConfig
from agegate.edge.errors import ConfigError
from agegate.edge.pipeline import BoxOptions

from .calibration_probe import buyer_figures, calibration_options, write_result
from .environment import environment
from .quality_gate_probe import record, settings_row


def parse_pairs(text: str) -> list[tuple[int, int]]:
    """'5:15,10:15' -> [(5, 15), (10, 15)]: decide_after (min_frames..window) and window."""
    pairs = []
    for item in text.split(","):
        try:
            k, w = (int(x) for x in item.split(":"))
        except ValueError:
            raise click.BadParameter(f"{item!r}: give DECIDE_AFTER:WINDOW, e.g. 10:15") from None
        problem = BoxOptions(decide_after=k, window=w).evidence_problem()  # the box's own rule
        if problem:
            raise click.BadParameter(f"{item!r}: {problem}")
        pairs.append((k, w))
    return pairs


def parse_policy(text: str, key: str) -> list[float]:
    """'8,12,16' -> [8.0, 12.0, 16.0]: values of the decision policy's `key` (min_frames, max_spread), each
    checked as box.toml checks it (its range, and min_frames against the box's decide_after)."""
    values = []
    for item in text.split(","):
        try:
            v = int(item) if key == "min_frames" else float(item)
            BoxConfig().override({f"decision.{key}": v}, origin=f"--{key.replace('_', '-')}")
        except ValueError:
            raise click.BadParameter(f"{item!r}: give numbers separated by commas, e.g. 3,5,8") from None
        except ConfigError as e:
            raise click.BadParameter(str(e)) from None
        values.append(float(v))
    return values


@click.command()
@calibration_options
@click.option("--pairs", default="5:15,8:15,10:15,15:15,20:20", show_default=True,
              callback=lambda c, p, v: parse_pairs(v),
              help="decide_after:window pairs to re-make decisions with (the box's own is 10:15).")
@click.option("--min-frames", "min_frames", default="3,5,8", show_default=True,
              callback=lambda c, p, v: parse_policy(v, "min_frames"),
              help="Good frames a track that ends early needs to be decided at all (the box's own is 5), each at "
              "the box's decide_after:window.")
@click.option("--spreads", default="6,8,12,16,100", show_default=True,
              callback=lambda c, p, v: parse_policy(v, "max_spread"),
              help="Largest spread of a track's good-frame ages (years) still decided (the box's own is 12; 100 "
              "never trips), each at the box's decide_after:window.")
def main(model, data, split, buyers, exclude_file, max_minors_ok, max_minors_ok_buyer, threads, limit, out,
         pairs, min_frames, spreads) -> None:
    cal, run, frames, unplaced, options, served = record(model, data, split, buyers, exclude_file, max_minors_ok,
                                                         threads, limit)

    def row(o: BoxOptions) -> dict:
        return settings_row(frames, served, options.min_sharpness, o, cal.predictions.head, cal, max_minors_ok_buyer)

    def with_policy(**kw) -> BoxOptions:
        return replace(options, policy=replace(options.policy, **kw))

    rows = {f"{k}:{w}": row(replace(options, decide_after=k, window=w)) for k, w in pairs}
    by_min_frames = {f"{m:g}": row(with_policy(min_frames=int(m))) for m in min_frames}
    by_spread = {f"{s:g}": row(with_policy(max_spread=s)) for s in spreads}
    result = {"model": model, "split": split, "data": list(data), "buyers": len(run.outcomes),
              "unplaced": len(unplaced), "per_image_point": round(cal.image_point, 6),
              "box": f"{options.decide_after}:{options.window}", "box_min_sharpness": options.min_sharpness,
              "box_min_frames": options.policy.min_frames, "box_max_spread": options.policy.max_spread,
              "targets": {"minors_ok_image": max_minors_ok, "minors_ok_buyer": max_minors_ok_buyer},
              "pairs": rows, "min_frames": by_min_frames, "max_spread": by_spread, "environment": environment()}
    for label, group in (("decide after {}", rows), ("min_frames {}", by_min_frames), ("max_spread {}", by_spread)):
        for key, r in group.items():
            click.echo(f"{label.format(key.replace(':', ', window '))}: {buyer_figures(r)}; uncertain "
                       f"{r['uncertain']}; MAE decided {r['mae_decided']}; frames seen p50 "
                       f"{r['frames_to_decision_p50']}, p95 {r['frames_to_decision_p95']}")
    write_result(out, result)


if __name__ == "__main__":
    main()
