"""`agegate train`: thin click layer over train.loop.run_training, its options generated from TrainConfig."""
from __future__ import annotations

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
def train(resume: bool, **options):
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
    run_training(TrainConfig(**options), resume=resume, echo=click.echo, given=given)
