"""`agegate average`: the weighted mean of runs fine-tuned from one start (average.py)."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--weight", "weights", type=float, multiple=True,
              help="Mixing weight of each run, in the order given (normalised to sum 1); default: equal.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--across-sizes", is_flag=True,
              help="Let runs trained at other input sizes take part (a fine-tune at 128 px from a 112 px start): "
                   "the backbone's weights do not depend on the input size. The mean runs at the first run's size.")
@click.option("--json", "as_json", is_flag=True, help="Print the sources and weights as JSON.")
def average(runs, weights, out, across_sizes, as_json):
    """Average the weights of RUNS (run folders fine-tuned from one start) into one model: a "model soup".

    One model comes out, so it costs the box nothing; runs that did not share a start average to noise, and are
    refused where their model.json files show it (each run's `train --weights`, followed back to the first start).
    Judge the result on val like any run (`agegate eval --split val`), then convert it.

    \b
    Example (the start, recovered from a shipped file, and a fine-tune of it):
      agegate recover v2.tflite --data UTK --data AAF --out runs/v2-rec
      agegate train --weights runs/v2-rec/model.keras ... --out runs/v2-ft
      agegate average runs/v2-rec runs/v2-ft --out runs/v2-soup
    """
    from .average import average_runs

    meta = average_runs([Path(r) for r in runs], Path(out), list(weights) or None, across_sizes)
    sources = meta.extra["averaged_from"]
    if as_json:
        click.echo(json.dumps({"out": str(out), "sources": sources}, indent=2))
        return
    click.echo(f"{out}: {meta.backbone} {meta.input_size} px, {meta.head.kind.value} head, the mean of "
               + ", ".join(f"{s['run']} ({s['weight']:.3g})" for s in sources))
