"""The root `agegate` command group.

Subcommands are loaded lazily from their rooms (click's LazyGroup pattern), so
`agegate --help` and the box's commands start without importing TensorFlow, and a
command whose extra is missing says which extra to install.
"""
from __future__ import annotations

import importlib
import json
import logging

import click

from . import __version__
from .errors import AgegateError, error_json

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("agegate.train.data_cli", "data", "Check, describe, split and review the labels of a face data set."),
    "train": ("agegate.train.train_cli", "train", "Train an age model (ResNet50 on GPU, compact backbones on CPU)."),
    "average": ("agegate.train.average_cli", "average",
                "Average the weights of runs fine-tuned from one start into one model (a model soup)."),
    "convert": ("agegate.convert.convert_cli", "convert", "Convert a trained model to TFLite (float32/16, dynamic, int8, QAT)."),
    "recover": ("agegate.convert.recover_cli", "recover",
                "Rebuild a trainable float model from a converted .tflite whose run is lost."),
    "tta": ("agegate.convert.tta_cli", "tta",
            "Copy a converted model with other test-time views (mirror, further input sizes)."),
    "eval": ("agegate.convert.eval_cli", "eval_cmd", "Measure a model's MAE, age bands and Challenge-25 figures."),
    "replay": ("agegate.convert.replay_cli", "replay",
               "Replay labelled photos as buyers at a till; score one decision per buyer."),
    "calibrate": ("agegate.convert.calibrate_cli", "calibrate",
                  "Calibrate a distribution model and choose its Challenge-25 operating point."),
    "qa": ("agegate.convert.qa_cli", "qa", "Gate a quantized model against its float parent; exit 1 if it must not ship."),
    "bench": ("agegate.benchmarks.bench_cli", "bench", "Measure model and pipeline latency on this device."),
    "edge": ("agegate.edge.edge_cli", "edge", "Run the checkout-box pipeline and read its statistics."),
    "bundle": ("agegate.convert.bundle_cli", "bundle", "Build, sign, verify and inspect model bundles."),
    "fleet": ("agegate.edge.fleet_cli", "fleet", "The chain's view: age bands, ID checks and cameras across boxes."),
    "device": ("agegate.edge.device_cli", "device", "Install, roll back and check models on a checkout box."),
    "demo": ("agegate.edge.demo", "demo", "Run the whole box pipeline on embedded faces with the shipped model."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["agegate.json"] = "--json" in args  # asked for JSON: errors come as JSON too
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AgegateError as e:
            click.secho(f"Error: {e}", fg="red", err=True)
            if ctx.meta.get("agegate.json"):
                # A script that asked for --json reads why on stdout, beside the exit code.
                click.echo(json.dumps(error_json(type(e).__name__, str(e), e.exit_code)))
            ctx.exit(e.exit_code)
        except click.ClickException as e:  # a bad option or value: click prints it to stderr as usual
            if ctx.meta.get("agegate.json"):
                click.echo(json.dumps(error_json("UsageError", e.format_message(), e.exit_code)))
            raise
        except BrokenPipeError:  # `agegate ... | head` closed the pipe: nothing more to say to anyone
            ctx.exit(1)
        except OSError as e:
            # A file the command was told to read or write that the system refused (a folder that does not
            # exist, no permission, a full disk): the path and the reason, not a traceback (-v logs it).
            logging.getLogger("agegate").debug("file error", exc_info=True)
            message = (f"{e.filename or 'a file'}: {e.strerror or e}; check the path, its permissions and the "
                       f"free space")
            click.secho(f"Error: {message}", fg="red", err=True)
            if ctx.meta.get("agegate.json"):
                click.echo(json.dumps(error_json(type(e).__name__, message, 1)))
            ctx.exit(1)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the table: listing commands must not import every room.
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, (_, _, h) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agegate")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """agegate: face-age models from training to the checkout box.

    \b
    The way through:
      agegate demo                the box on embedded faces, with the shipped model
      agegate data check DIR      validate a labelled data set
      agegate train ...           train (and export model.keras + model.json)
      agegate convert RUN ...     TFLite float32/float16/dynamic/int8
      agegate eval ...            MAE, age bands, Challenge 25, per data set
      agegate calibrate M ...     temperature and Challenge-25 operating point, on val
      agegate replay DATA ...     photos as buyers at a till: one decision per buyer
      agegate qa ...              quantized vs float gate (MAE < 8, drift)
      agegate bundle build ...    signed bundle for the field
      agegate device install ...  verified atomic install on a box
      agegate device config ...   the box's box.toml: every key, commented
      agegate edge run ...        the box itself
      agegate fleet report ...    the chain's view across boxes
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console entry point (AgegateError becomes a message and an exit code in LazyGroup.invoke)."""
    cli(prog_name="agegate")
