"""Click options that several commands take, declared once (data, train, convert, eval, qa, replay)."""
from __future__ import annotations

import click

from .datasets import FORMATS, SPLITS

#: What a --split may name: one split of each set, or all of it (a set without splits is read whole anyway).
SPLIT_CHOICE = click.Choice((*SPLITS, "all"))

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
                             help="Data set layout; auto detects it.")
split_file_option = click.option("--split-file", type=click.Path(exists=True, dir_okay=False),
                                 help="CSV file_name,split (UTKFace: DIR/split.csv is used when present).")

_data_opts = [
    format_option,
    split_file_option,
    click.option("--limit", type=click.IntRange(min=1),
                 help="Evaluate a seeded random subset of N images (quick looks)."),
]


def data_options(f):
    for opt in reversed(_data_opts):
        f = opt(f)
    return f
