"""`agegate train`: thin click layer over train.loop.run_training, its options generated from TrainConfig."""
from __future__ import annotations

import contextlib
import json
import sys
import typing
from dataclasses import MISSING, fields

import click

from .config import TrainConfig

#: Click details the dataclass cannot say: required and repeatable options, paths that must exist.
_SPECIAL = {
    "data": dict(multiple=True, type=click.Path(exists=True)),  # required, except with --resume (checked below)
    "data_weight": dict(multiple=True, type=float),
    "teacher": dict(multiple=True, type=click.Path(exists=True)),
    "exclude": dict(multiple=True, type=click.Path(exists=True, dir_okay=False)),
    "out": dict(required=True, type=click.Path(file_okay=False), show_default=False),
    "split_file": dict(type=click.Path(exists=True, dir_okay=False)),
    "cache_dir": dict(type=click.Path(file_okay=False)),
}


def _options(f):
    hints = typing.get_type_hints(TrainConfig)
    for fld in reversed(fields(TrainConfig)):
        if not fld.metadata["cli"]:
            continue
        name = "--" + fld.name.replace("_", "-")
        kw = dict(help=fld.metadata["help"] or None)
        kind = typing.get_args(hints[fld.name]) or (hints[fld.name],)
        if bool in kind:
            kw["is_flag"] = True
        elif fld.metadata["choices"]:
            kw.update(type=click.Choice(fld.metadata["choices"]), default=fld.default, show_default=True)
        elif fld.default is not MISSING and fld.default is not None:
            kw.update(type=type(fld.default), default=fld.default, show_default=True)
        else:
            kw["type"] = next(t for t in kind if t is not type(None))
        kw.update(_SPECIAL.get(fld.name, {}))
        f = click.option(name, fld.name, **kw)(f)
    return f


@click.command()
@_options
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint, as its config.json "
              "has it (`agegate train --out RUN --resume`): --epochs may grow; another value of any other option "
              "is refused, not ignored.")
@click.option("--json", "as_json", is_flag=True, help="Progress on stderr; on stdout one JSON object: the run's "
              "model, val MAE, epochs and sources (with the images where no face was found).")
def train(resume: bool, as_json: bool, **options):
    """Train an age model (one age, or a distribution over ages) and export OUT/model.keras with OUT/model.json.

    \b
    Every epoch writes a checkpoint, history.csv and curves.png; the best model by
    val MAE is kept. Example (CPU, a few minutes):
      agegate train --data ../shared/datasets/utkface --backbone mobilenet_v3_small \\
          --weights none --input-size 96 --epochs 3 --out runs/smoke
    """
    from .loop import run_training

    if not options["data"] and not resume:
        raise click.UsageError("Missing option '--data' (a data set folder or CSV; --resume alone continues "
                               "with the run's own).")
    for many in ("data", "data_weight", "teacher", "exclude"):
        options[many] = list(options[many])
    ctx = click.get_current_context()
    given = {k for k in options if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    if not as_json:
        run_training(TrainConfig(**options), resume=resume, echo=click.echo, given=given)
        return
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints its progress bar to stdout
        result = run_training(TrainConfig(**options), resume=resume, echo=lambda m: click.echo(m, err=True),
                              given=given)
    click.echo(json.dumps(run_summary(result), indent=2))


def run_summary(result) -> dict:
    """What `train --json` prints: the finished run as its model.json records it."""
    from agegate.edge.contracts import MODEL_FILE
    from agegate.edge.metadata import sidecar_path

    meta_path = sidecar_path(result.out / MODEL_FILE)
    extra = json.loads(meta_path.read_text())["extra"]
    return {"ok": True, "out": str(result.out), "model": str(result.out / MODEL_FILE), "metadata": str(meta_path),
            "best_val_mae": result.best_val_mae, "best_epoch": result.best_epoch,
            "exported_epoch": extra["exported_epoch"], "epochs_trained": extra["trained_epochs"],
            "sources": extra["sources"]}
