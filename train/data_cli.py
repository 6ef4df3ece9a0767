"""`agegate data check|report|split`: no TensorFlow needed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli_options import format_option, split_file_option
from .datasets import read_dataset

_fmt, _split = format_option, split_file_option
_target = click.option("--target", type=click.Choice(["real", "apparent"]), default="real", show_default=True,
                       help="APPA-REAL original layout: which age is the label.")


@click.group()
def data() -> None:
    """Check, describe and split a labelled face data set (no TensorFlow needed)."""


@data.command()
@click.argument("directory", type=click.Path(exists=True))
@_fmt
@_split
@_target
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--max-list", type=int, default=50, show_default=True, help="Problems listed in text output.")
def check(directory, fmt, split_file, target, as_json, max_list):
    """Validate every image and label in DIRECTORY.

    Exit 0 when every record is usable, 1 when any is bad (warnings, such as a
    grayscale image that converts cleanly, do not fail), 2 for usage errors.
    """
    from .check import check_dataset

    ds = read_dataset(directory, fmt, split_file, target)
    result = check_dataset(ds, progress=not as_json and sys.stderr.isatty())
    s = result.summary()
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        click.echo(f"{s['dataset']} ({s['format']}): {s['ok']} images ok of {s['records']} records; "
                   f"{s['errors']} error(s), {s['warnings']} warning(s)")
        if s["ok"]:
            click.echo(f"ages {s['age_min']:g}..{s['age_max']:g} (mean {s['age_mean']}); splits {s['splits']}")
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
def report(directory, fmt, split_file, target, out):
    """Write an HTML report (age histogram, bands, sizes, sample faces, problems)."""
    from .check import check_dataset
    from .report import write_report

    ds = read_dataset(directory, fmt, split_file, target)
    result = check_dataset(ds, progress=True)
    page = write_report(result, Path(out))
    click.echo(f"{result.n_ok} images ok, {len(result.problems)} problem(s); report: {page}")


@data.command()
@click.argument("directory", type=click.Path(exists=True))
@_fmt
@_target
@click.option("--val", type=float, default=0.1, show_default=True)
@click.option("--test", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="split CSV to write.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def split(directory, fmt, target, val, test, seed, out, as_json):
    """Write a deterministic train/val/test split, stratified by age band, persons kept together."""
    from collections import Counter

    from .split import make_split, write_split

    ds = read_dataset(directory, fmt, None, target)
    assignment = make_split(ds.records, val, test, seed)
    write_split(assignment, ds.root, Path(out))
    counts = Counter(assignment.values())
    if as_json:
        click.echo(json.dumps({"ok": True, "out": str(out), "seed": seed,
                               **{k: counts[k] for k in ("train", "val", "test")}}, indent=2))
        return
    click.echo(f"wrote {out}: train {counts['train']}, val {counts['val']}, test {counts['test']}")
