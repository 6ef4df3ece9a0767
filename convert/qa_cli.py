"""`agegate qa`: a quantized model against its float parent (qa.py, qa_report.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agegate.edge.cli_types import box_config_option, json_option, threads_option
from agegate.train.cli_options import SPLIT_CHOICE, data_options

from .qa import data_label


@click.command()
@click.option("--float", "float_model", required=True, type=click.Path(exists=True),
              help="The float parent: run folder, model.keras (evaluated with --quantized's test-time "
                   "augmentation), or a float32 .tflite converted with the same --tta.")
@click.option("--quantized", required=True, type=click.Path(exists=True), help="The quantized .tflite.")
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True),
              help="Data set folder or CSV; repeat to require MAE < --max-mae on every set (per population).")
@data_options
@click.option("--split", type=SPLIT_CHOICE, default="test", show_default=True,
              help="The images both models are judged on.")
@click.option("--max-mae", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True,
              help="Business gate: the quantized MAE must be under this on every --data set.")
@click.option("--max-drift", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Quantized MAE minus float MAE, in years, at most.")
@click.option("--max-flips", type=click.FloatRange(0, 1), default=0.02, show_default=True,
              help="Share of images whose ID check may differ from the float parent's (0-1).")
@click.option("--buyers", type=click.IntRange(min=0), default=0, show_default=True,
              help="A calibrated model: also replay every minor of the split and a seeded sample of N others as "
              "buyers through the real box (as `agegate calibrate` does, minutes per hundred), gate the per-buyer "
              "target its operating point carries, and plot the per-buyer trade-off. 0: per image only (the "
              "report notes the per-buyer target as unchecked).")
@click.option("--draws", type=click.IntRange(1, 20), default=1, show_default=True,
              help="With --buyers: replay the same buyers N times (other order, gaps, poses and camera noise each "
                   "time) and count each minor by the share of draws they pass in, as `agegate calibrate --draws` "
                   "chose the point; N times the replay's minutes.")
@box_config_option
@threads_option
@click.option("--debug-layers", is_flag=True,
              help="Rank the layers by their int8 error with TFLite's quantization debugger (needs a Keras --float); "
                   "`agegate convert --float-layers N` keeps the worst N in float.")
@click.option("--out", default="qa", show_default=True, type=click.Path(file_okay=False),
              help="Folder for report.json (what `bundle build --qa` takes), report.html and its charts.")
@json_option
def qa(float_model, quantized, data, fmt, split_file, limit, split, max_mae, max_drift, max_flips, buyers, draws,
       box_config, threads, debug_layers, out, as_json):
    """Gate a quantized model against its float parent. Exit 0 only if every gate passes."""
    from agegate.edge.config import camera_box, load_config
    from agegate.edge.errors import UsageError
    from agegate.edge.metadata import sha256_file, sidecar_path

    from .evaluate import Predictions, evaluate_sets, is_tflite, model_metadata, read_splits
    from .qa import Gates, check_float_parent, compare, parent_head, parent_notes
    from .qa_report import write_report

    # A gate between two different predictors would measure the augmentation, not quantization. A run
    # folder has none of its own (`convert --tta` adds it): it is evaluated with the quantized model's.
    qmeta = model_metadata(quantized)
    # the bytes the verdict is on (`bundle build` checks them)
    judged = sha256_file(quantized) if Path(quantized).is_file() else "", sha256_file(sidecar_path(quantized))
    views = qmeta.views
    if buyers and (not qmeta.head.is_distribution or qmeta.operating_point is None):
        raise UsageError(f"--buyers gates the per-buyer target of a calibrated model's operating point; {quantized} "
                         f"carries none (`agegate calibrate` a distribution model first)")
    if draws > 1 and not buyers:
        raise UsageError(f"--draws {draws} replays buyers several times; it needs --buyers N")
    box = camera_box(load_config(box_config) if box_config else None, threads)  # before minutes of evaluation
    fmeta = model_metadata(float_model)
    float_views = fmeta.views if is_tflite(float_model) else views
    if float_views != views:
        raise UsageError(f"--float and --quantized use different test-time augmentation "
                         f"({float_views} vs {views}); convert both with the same --tta and --tta-size")
    check_float_parent(float_model, quantized, fmeta)
    head = parent_head(fmeta, qmeta)  # ...and one head: the child's temperature, so only rounding differs
    splits = read_splits(list(data), fmt, split_file, split, limit)  # the same images for both models
    fsets = evaluate_sets(float_model, splits, threads=threads, views=views, head=head)
    qsets = evaluate_sets(quantized, splits, threads=threads)
    fp = Predictions.concat([s.predictions for s in fsets])
    qp = Predictions.concat([s.predictions for s in qsets])
    per_set = {s.name: s.predictions for s in qsets} if len(qsets) > 1 else {}
    replayed, mismatch = _replay_buyers(quantized, qmeta, splits, buyers, draws, box) if buyers else (None, "")
    rep = compare(fp, qp, Gates(max_mae, max_drift, max_flips), str(float_model), str(quantized), per_set, replayed)
    rep.quantized_sha256, rep.quantized_metadata_sha256 = judged
    # images: those judged; a label whose image cannot be read (or, through the detector, holds no face) is not
    rep.data = [{"name": s.name, "path": s.path, "split": s.split, "images": len(q.predictions.y_true),
                 "skipped": len(q.predictions.skipped), "limit": limit} for s, q in zip(splits, qsets)]
    if head is not None and head.temperature != fmeta.head.temperature:
        rep.notes.append(f"the float parent's distributions are read at the quantized model's temperature "
                         f"{head.temperature:g} (its own: {fmeta.head.temperature:g}), so flips measure rounding, "
                         f"not calibration")
    rep.notes = (parent_notes(fmeta) + rep.notes + ([f"per-buyer gate: {mismatch}"] if mismatch else [])
                 + data_notes(rep.data))
    layers = _worst_layers(float_model, splits) if debug_layers else None
    write_report(rep, fp, qp, Path(out), layers)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2))
    else:
        _echo_report(rep, layers, Path(out))
    sys.exit(0 if rep.passed else 1)


def _replay_buyers(quantized, qmeta, splits, buyers: int, draws: int, box) -> tuple[list[dict], str]:
    """Every minor of the evaluated images and a seeded sample of `buyers` others replayed as buyers through `box`
    (BoxOptions; as `agegate calibrate` replays), `draws` times: the replays' summaries, and why this box's
    settings differ from those the model's operating point was chosen with ('' when they do not)."""
    from agegate.edge.challenge25 import settings_mismatch
    from agegate.edge.runtime import AgeModel

    from .calibrate import buyers_to_replay
    from .replay import replay_draws

    records = [r for s in splits for r in s.records]
    replayed = replay_draws(AgeModel(quantized, threads=box.threads), buyers_to_replay(records, set(), buyers), box,
                            draws, show=True)
    return replayed, settings_mismatch(qmeta.operating_point, box.decision_rules())


def _worst_layers(float_model, splits) -> list[dict]:
    """The ten layers TFLite's quantization debugger ranks worst (--debug-layers)."""
    from agegate.edge.errors import UsageError

    from .evaluate import is_tflite
    from .mixed_int8 import layer_errors
    from .tflite import calibration_images, load_keras_model

    if is_tflite(float_model):
        raise UsageError("--debug-layers needs the Keras float model (a run folder), not a .tflite")
    km, meta = load_keras_model(float_model)
    images = calibration_images(splits[0].records, meta.preprocess, 64)
    return [e.to_dict() for e in layer_errors(km, images)[:10]]


def data_notes(data: list[dict]) -> list[str]:
    """What a reader of the verdict must know of the data it stands on: a subset, or another split than test."""
    notes = []
    if any(d["limit"] for d in data):
        notes.append(f"judged on a seeded subset of at most {data[0]['limit']} images per set (--limit): a quick look, "
                     f"not a release verdict")
    other = [data_label(d) for d in data if d["split"] != "test"]
    if other:
        notes.append(f"judged on {', '.join(other)}, not a test split: its figures are not the held-back ones")
    return notes


def _echo_report(rep, layers: list[dict] | None, out: Path) -> None:
    click.echo("judged on " + ", ".join(f"{data_label(d)} ({d['images']} images"
                                        + (f"; {d['skipped']} left out, unreadable or no face" if d.get("skipped")
                                           else "") + ")" for d in rep.data))
    click.echo(f"float MAE {rep.float_metrics['mae']:.3f}, quantized MAE {rep.quantized_metrics['mae']:.3f}, "
               f"drift {rep.comparison['drift']:+.3f}, mean |diff| {rep.comparison['mean_abs_diff']:.3f}, "
               f"p95 |diff| {rep.comparison['p95_abs_diff']:.3f}, "
               f"flips {rep.comparison['decision_flip_rate']:.2%} on {rep.n} images")
    per_buyer = rep.challenge25.get("per_buyer")
    if per_buyer:
        first = f", draw 1 of {per_buyer['draws']}; the gate counts every draw" if per_buyer["draws"] > 1 else ""
        click.echo(f"  per buyer ({per_buyer['buyers']} replayed through the box{first}): minors decided ok "
                   f"{per_buyer['minors_decided_ok']} of {per_buyer['minors']}, 25+ asked for ID "
                   f"{per_buyer['adults_asked']} of {per_buyer['adults_25plus']}, decided "
                   f"{per_buyer['decided_share']:.1%}")
    for g in rep.gates:
        click.echo(f"  {'pass' if g.passed else 'FAIL'}  {g.name}: {g.value} (limit {g.limit})")
    for note in rep.notes:
        click.echo(f"  note: {note}")
    for l in layers or []:
        click.echo(f"  layer {l['layer']} ({l['op']}): int8 error {l['steps']} steps")
    click.echo(f"{'PASS' if rep.passed else 'FAIL'}: report in {out / 'report.html'}")
