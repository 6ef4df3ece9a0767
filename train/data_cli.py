"""`agegate data check|report|split|review`: no TensorFlow needed (review reads a .tflite with LiteRT)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli_options import SPLIT_CHOICE, format_option, split_file_option
from .datasets import read_dataset

_fmt, _split = format_option, split_file_option
_target = click.option("--target", type=click.Choice(["real", "apparent"]), default="real", show_default=True,
                       help="APPA-REAL original layout: which age is the label.")


@click.group()
def data() -> None:
    """Check, describe, split and review the labels of a face data set (no TensorFlow needed)."""


@data.command()
@click.argument("directory", type=click.Path(exists=True))
@_fmt
@_split
@_target
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--max-list", type=click.IntRange(min=0), default=50, show_default=True,
              help="Problems listed in text output.")
def check(directory, fmt, split_file, target, as_json, max_list):
    """Validate every image and label in DIRECTORY.

    Exit 0 when every record is usable, 1 when any is bad (warnings, such as a
    grayscale image that converts cleanly, do not fail), 2 for usage errors.
    """
    from .check import check_dataset, splits_in_words

    ds = read_dataset(directory, fmt, split_file, target)
    result = check_dataset(ds)
    s = result.summary()
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        click.echo(f"{s['dataset']} ({s['format']}): {s['ok']} images ok of {s['records']} records; "
                   f"{s['errors']} error(s), {s['warnings']} warning(s)")
        if s["ok"]:
            click.echo(f"ages {s['age_min']:g}..{s['age_max']:g} (mean {s['age_mean']}); "
                       f"splits: {splits_in_words(s['splits'])}")
        else:
            click.echo("no usable image: nothing to train or evaluate on")
        if s["problems_by_kind"]:
            click.echo("problems by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(s["problems_by_kind"].items())))
        for p in result.problems[:max_list]:
            # reader problems point into the label file; image problems name the image and its label line
            where = p.file + ((f":{p.line}" if p.file.endswith(".csv") else f" (label line {p.line})") if p.line
                              else "")
            click.echo(f"  {p.severity:7s} {p.kind:17s} {where}: {p.detail}")
        if len(result.problems) > max_list:
            click.echo(f"  ... {len(result.problems) - max_list} more (use --json for all)")
    sys.exit(1 if result.n_errors else 0)


@data.command()
@click.argument("directory", type=click.Path(exists=True))
@_fmt
@_split
@_target
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for report.html and PNGs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report's summary.json (and where it is) as JSON.")
def report(directory, fmt, split_file, target, out, as_json):
    """Write an HTML report (age histogram, bands, sizes, sample faces, problems)."""
    import json

    from .check import check_dataset
    from .report import write_report

    ds = read_dataset(directory, fmt, split_file, target)
    result = check_dataset(ds)
    page = write_report(result, Path(out))
    if as_json:
        summary = json.loads((Path(out) / "summary.json").read_text())
        click.echo(json.dumps({"ok": True, "report": str(page), "summary": summary}, indent=2))
        return
    click.echo(f"{result.n_ok} images ok, {len(result.problems)} problem(s); report: {page}")


@data.command()
@click.argument("directory", type=click.Path(exists=True))
@_fmt
@_target
@click.option("--val", type=float, default=0.1, show_default=True, help="Share of each age band for val.")
@click.option("--test", type=float, default=0.1, show_default=True, help="Share of each age band for test.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same split.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="split CSV to write.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def split(directory, fmt, target, val, test, seed, out, as_json):
    """Write a deterministic train/val/test split, stratified by age band; a person's records, a group
    photo's rows and byte-identical files (one photo saved twice) each land in one split."""
    from collections import Counter

    from agegate.edge.errors import UsageError

    from .check import content_digests
    from .split import make_split, write_split

    if Path(out).exists():  # before the data are read
        raise UsageError(f"{out} exists: a split decides which images every later figure is measured on, so one is "
                         f"not written over; choose another --out, or remove it first")
    ds = read_dataset(directory, fmt, None, target)
    digests = content_digests(r.path for r in ds.records)
    assignment = make_split(ds.records, val, test, seed, digests)
    write_split(assignment, ds.root, Path(out))
    counts = Counter(assignment.values())
    copies = Counter(digests.values())
    kept = {"persons": len({r.person for r in ds.records if r.person}),
            "copy_groups": sum(n > 1 for n in copies.values()),
            "copy_files": sum(n for n in copies.values() if n > 1)}
    if as_json:
        click.echo(json.dumps({"ok": True, "out": str(out), "seed": seed,
                               **{k: counts[k] for k in ("train", "val", "test")}, **kept}, indent=2))
        return
    click.echo(f"wrote {out}: train {counts['train']}, val {counts['val']}, test {counts['test']}")
    click.echo(f"kept together: {kept['persons']} person(s) by id" if kept["persons"] else
               "no person ids in this set: each photo is its own group (a person's other photos may land in "
               "another split)")
    if kept["copy_groups"]:
        click.echo(f"kept together: {kept['copy_groups']} group(s) of byte-identical files ({kept['copy_files']} "
                   f"files; `agegate data check` lists them)")


@data.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="A distribution model (.tflite, or a run folder) trained on these images.")
@click.option("--data", "datas", required=True, multiple=True, type=click.Path(exists=True),
              help="Data set folder or CSV; repeat for several sets.")
@_fmt
@_split
@click.option("--split", type=SPLIT_CHOICE, default="train", show_default=True, help="Which split to review.")
@click.option("--level", type=float, default=0.99, show_default=True,
              help="Flag a label outside this central interval of the model's distribution ...")
@click.option("--min-gap", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="... and at least this many years from its estimate.")
@click.option("--exclude", "excludes", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An exclusion list already checked (train --exclude's format): its images are not shown "
                   "again; repeat for several.")
@click.option("--root", type=click.Path(file_okay=False),
              help="Write to-check.txt's paths relative to this folder (e.g. ../shared/datasets).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for review.tsv, to-check.txt and the contact sheets sheet-NN.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the suspects as JSON.")
def review(model_path, datas, fmt, split_file, split, level, min_gap, excludes, root, out, as_json):
    """List the labels a trained model finds implausible, for a person to check.

    \b
    A label outside the model's central --level interval for its face and at
    least --min-gap years from its estimate is either the model's error or the
    label's; contact sheets (20 faces each, label and estimate on each) let a
    person tell which at a glance. Nothing is excluded by this command: the
    reviewer uncomments the plainly wrong lines of to-check.txt and trains with
    `agegate train ... --exclude to-check.txt`. Faces go through the box's
    detector and crop when the model was trained on them. Example:
      agegate data review --model edge/assets/default_model.tflite \\
          --data ../shared/datasets/utkface --data ../shared/datasets/aaf \\
          --exclude train/label-errors-train.txt --root ../shared/datasets --out review/
    """
    from agegate.convert.evaluate import Predictions, evaluate_sets, read_splits
    from agegate.edge.errors import UsageError

    from .label_errors import read_label_exclusions
    from .label_review import check_no_review_in, label_suspects, not_listed, write_review

    if not 0 < level < 1:
        raise UsageError(f"--level must be between 0 and 1 (a share of the distribution), not {level}")
    check_no_review_in(Path(out))  # before minutes of evaluation
    p = Predictions.concat([r.predictions for r in evaluate_sets(
        model_path, read_splits(list(datas), fmt, split_file, split))])
    if p.probs is None:
        raise UsageError(f"{model_path} gives one age, not a distribution: review needs a model trained with "
                         f"--head distribution")
    found = label_suspects(p.paths, p.lines, p.y_true, p.y_pred, p.probs, p.head, level=level, min_gap=min_gap,
                           faces=p.faces)
    listed = [e for listing in excludes for e in read_label_exclusions(Path(listing))]
    suspects = not_listed(found, listed)
    files = write_review(suspects, Path(out), root)
    summary = {"model": str(model_path), "split": split, "images": len(p.paths), "level": level, "min_gap": min_gap,
               "flagged": len(found), "already_listed": len(found) - len(suspects), "to_check": len(suspects),
               "files": [str(f) for f in files], "suspects": [s.to_dict() for s in suspects]}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['flagged']} of {summary['images']} {split} labels lie outside the model's central "
               f"{100 * level:g} % interval and {min_gap:g}+ years from its estimate; {summary['already_listed']} "
               f"already listed, {summary['to_check']} to check")
    click.echo(f"look at {out}/sheet-*.png; mark the wrong ones in {out}/to-check.txt ({out}/review.tsv: the table)")
