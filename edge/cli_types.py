"""Click parameter types that commands of every room share (here in edge/, which every room may import).

A bad number stops at the command line with click's own message (exit 2), not deep in the runtime with
one that blames the model file ("num_threads should >= 1; is the file complete?").
"""
from __future__ import annotations

import click

from .contracts import THREADS_RANGE

#: --threads of every command that runs a model (box.toml's `model.threads` has the same bounds).
THREADS = click.IntRange(*THREADS_RANGE)
#: The option itself, for the commands that run a model at the box's default of 2 threads.
threads_option = click.option("--threads", type=THREADS, default=2, show_default=True,
                              help="CPU threads the model runs on (LiteRT; a box runs 2).")
#: --json of a command whose result is one object (a command that says more, or other, gives its own help).
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the result as one JSON object on stdout (an error too); progress and "
                                "warnings go to stderr.")
#: --config of the commands that replay buyers through the box to choose or check an operating point.
box_config_option = click.option(
    "--config", "box_config", type=click.Path(exists=True, dir_okay=False),
    help="A store's box.toml: replay buyers through the box as it sets it (detector, quality and decision "
         "settings; its source is not used, the replay is a till camera's frames). Default: the box's defaults.")


class IntList(click.ParamType):
    """Comma-separated integers, each within [lo, hi] (`--threads 1,2`)."""

    name = "list"

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            out = [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r}: give whole numbers separated by commas, e.g. 1,2", param, ctx)
        if not out or any(not self.lo <= v <= self.hi for v in out):
            self.fail(f"{value!r}: each must be {self.lo}..{self.hi}", param, ctx)
        return out
