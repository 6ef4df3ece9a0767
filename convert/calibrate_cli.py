"""`agegate calibrate`: temperature and Challenge-25 operating point of a distribution model (calibrate.py)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from agegate.edge.challenge25 import CONFIDENCE, DEFAULT_MAX_MINORS_OK_BUYER, DEFAULT_MAX_MINORS_OK_IMAGE
from agegate.edge.cli_types import box_config_option, json_option, threads_option
from agegate.train.cli_options import SPLIT_CHOICE, format_option


@click.command()
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True),
              help="Labelled data set(s) to choose on; repeat for several.")
@format_option
@click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True,
              help="Choose on val; report on test with eval/replay.")
@click.option("--max-minors-ok", type=click.FloatRange(0, 1), default=DEFAULT_MAX_MINORS_OK_IMAGE, show_default=True,
              help="Target: share of minors (under 18) decided ok per image.")
@click.option("--max-minors-ok-buyer", type=click.FloatRange(0, 1), default=DEFAULT_MAX_MINORS_OK_BUYER,
              show_default=True, help="Target per buyer, measured by replaying the split through the box.")
@click.option("--buyers", type=click.IntRange(min=0), default=800, show_default=True,
              help="For the per-buyer target, replay every minor of the split and a seeded sample of this many "
              "others (18+; what the point costs adults). 0: per image only.")
@click.option("--draws", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Replay the buyers this many times (other orders, gaps, poses and camera noise; seeds 0, 1, ...) "
                   "and count each minor by the share of draws they pass in: a steadier per-buyer point, N times "
                   "the replay's time (about 14 min per draw on val, 2 cores).")
@click.option("--allow-looser", is_flag=True, help="Accept targets above the defaults (recorded in the metadata).")
@click.option("--allow-unshown", is_flag=True,
              help="Write the point even where the data hold too few minors to show a target with --confidence "
                   "(230 per image, 460 per buyer at the defaults); recorded as target_shown false. Without it, "
                   "such data change nothing: a point chosen on a handful of minors says nothing of new buyers.")
@click.option("--exclude", "exclude_file", type=click.Path(exists=True, dir_okay=False),
              help="A list of images a person found mislabelled (path, then why; one per line; PATH:LINE names one "
              "face of a group photo by its line in the label CSV), left out and recorded with the operating "
              "point. The minors at the line are the ones to check.")
@click.option("--confidence", type=click.FloatRange(0, 0.999), default=CONFIDENCE, show_default=True,
              help="Meet the targets with this confidence (upper bound on the minors' share); 0: the share seen.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N images per set (quick looks).")
@box_config_option
@threads_option
@click.option("--png", type=click.Path(dir_okay=False), help="Write the trade-off curve with the operating point.")
@json_option
def calibrate(model_path, data, fmt, split, max_minors_ok, max_minors_ok_buyer, buyers, draws, allow_looser,
              allow_unshown, exclude_file, confidence, limit, box_config, threads, png, as_json):
    """Calibrate a distribution model (a .tflite) and choose when it asks for ID; writes its .json sidecar.

    \b
    1. Temperature: the 80 % age interval then holds the true age in 80 % of the split's images.
    2. Operating point: the highest P(under 25) that still says ok while at most --max-minors-ok of
       minors pass per image and --max-minors-ok-buyer per buyer (a replay of every minor of the
       split and --buyers others through the real box, as --config sets it). The box, `device doctor`
       and `agegate qa` read it.
    Example:
      agegate calibrate m.tflite --data ../shared/datasets/utkface --data ../shared/datasets/aaf
    """
    from agegate.train.label_errors import match_exclusions, read_label_exclusions

    from agegate.edge.config import camera_box, load_config
    from agegate.edge.contracts import MINOR_AGE

    from .calibrate import (buyers_to_replay, calibrate as run_calibrate, check_not_a_release, check_shown,
                            check_targets, plot_tradeoff)
    from .evaluate import Predictions, evaluate_sets, read_splits, splits_label

    check_targets(max_minors_ok, max_minors_ok_buyer, allow_looser)  # before minutes of work
    check_not_a_release(Path(model_path))
    box = camera_box(load_config(box_config) if box_config else None, threads)  # whose decisions the point is for
    excluded = read_label_exclusions(Path(exclude_file)) if exclude_file else []
    splits = read_splits(list(data), fmt, None, split, limit)  # once: evaluated, then replayed
    if any(s.split == "test" for s in splits):
        click.secho("warning: choosing the operating point on the test split makes every test figure of this "
                    "model (eval, replay, qa) optimistic; choose on val and report on test", fg="yellow", err=True)
    records = [r for s in splits for r in s.records]
    # a typo fails now, not after minutes of evaluation
    gone = match_exclusions(excluded, [(str(r.path), r.line) for r in records], exclude_file) if excluded else set()
    chosen_on = splits_label(splits)
    if not allow_unshown:  # the labels alone can say so: before minutes of work
        n_minors = sum(r.age < MINOR_AGE for r in records) - len(gone)
        for key, target in (("per_image", max_minors_ok), ("per_buyer", max_minors_ok_buyer if buyers else None)):
            if target is not None:
                check_shown(n_minors, target, confidence or None, key, chosen_on, Path(model_path))
    sets = evaluate_sets(model_path, splits, threads=threads)
    preds = Predictions.concat([s.predictions for s in sets])

    def buyer_replay(meta):
        from agegate.edge.runtime import AgeModel

        from .replay import replay_draws

        model = AgeModel(model_path, threads=threads)
        model.meta = meta  # the temperature being chosen, no operating point yet
        return replay_draws(model, buyers_to_replay(records, gone, buyers), box, draws, show=True)

    result = run_calibrate(Path(model_path), preds, buyer_replay if buyers else None,
                           max_minors_ok_image=max_minors_ok, max_minors_ok_buyer=max_minors_ok_buyer if buyers else None,
                           allow_looser=allow_looser, chosen_on=chosen_on, confidence=confidence or None,
                           excluded=excluded, box_rules=box.decision_rules(), allow_unshown=allow_unshown)
    if png:
        plot_tradeoff(Path(png), result.image_curve, result.buyer_curve, result.operating_point)
    if as_json:
        click.echo(json.dumps({"model": str(model_path), "split": split, **result.to_json()}, indent=2))
        return
    click.echo(result.render())
    click.echo(f"written to {Path(model_path).with_suffix('.json')}")
