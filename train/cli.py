"""`agegate train`: thin click layer over train.loop.run_training."""
from __future__ import annotations

import click

from .backbones import BACKBONES
from agegate.edge.preprocess import FACE_CROPS

from .augment import AUGMENTS
from .config import TrainConfig
from .sources import AGE_PRIORS
from .cli_options import format_option, split_file_option


@click.command()
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True),
              help="Data set folder or CSV; repeat for several sets (each with its own split, or one made here).")
@click.option("--data-weight", type=float, multiple=True,
              help="Loss weight of each --data source, in the same order [default: 1 each].")
@click.option("--age-prior", type=click.Choice(AGE_PRIORS), default="none", show_default=True,
              help="balanced: weigh images by inverse age frequency, so one set's age mix does not bias the model.")
@click.option("--crop", type=click.Choice(FACE_CROPS), default="none", show_default=True,
              help="box: run the box's face detector and crop over every image once (cached), so the model "
                   "learns what the box sees; recorded in the model's metadata. none: use images as they are.")
@format_option
@split_file_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (runs/NAME).")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default="resnet50", show_default=True)
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet (download), none (random), or PATH to a .h5/.keras file with backbone layers.")
@click.option("--input-size", type=int, help="Square input size in pixels [default: the backbone's].")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--loss", type=click.Choice(["mae", "huber"]), default="huber", show_default=True)
@click.option("--freeze-epochs", type=int, default=0, show_default=True,
              help="Train the head with the backbone frozen for N epochs, then unfreeze.")
@click.option("--augment", type=click.Choice(AUGMENTS), default="light", show_default=True,
              help="light: flip, small shift/crop, brightness and contrast. till: what a till camera does "
                   "(box jitter, tilt, motion/defocus blur, noise, JPEG, low light, colour casts, greyscale, "
                   "small faces); see train/augment.py.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--precision", type=click.Choice(["float32", "mixed_float16"]), default="float32", show_default=True,
              help="mixed_float16 on GPUs with tensor cores.")
@click.option("--distribute", type=click.Choice(["none", "mirrored", "multiworker"]), default="none",
              show_default=True, help="tf.distribute strategy: mirrored (one host, many GPUs), multiworker (TF_CONFIG).")
@click.option("--patience", type=int, default=5, show_default=True, help="Early stopping patience in epochs.")
@click.option("--keep", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Export the epoch with the best val MAE, or the last one (when val MAE is not the only "
                   "criterion, e.g. Challenge-25 fine-tuning judged afterwards with `agegate eval`).")
@click.option("--minor-weight", type=float, default=1.0, show_default=True,
              help="Loss weight of training images under 18: >1 trades some adult accuracy for fewer minors "
                   "estimated 25+ (Challenge 25).")
@click.option("--minor-overshoot-weight", type=float, default=1.0, show_default=True,
              help="Asymmetric Challenge-25 loss: a minor's loss is multiplied by this where the estimate is above "
                   "the true age (1: off). Pushes down the errors that pass minors as adults.")
@click.option("--bn-recalibrate", type=int, default=20, show_default=True,
              help="Recompute BatchNorm statistics on N training batches after each epoch (0: off).")
@click.option("--strict", is_flag=True, help="Fail on an unreadable image instead of skipping it.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Keep decoded images here for later runs.")
@click.option("--limit", type=int, help="Use at most N training images (quick looks, smoke tests).")
@click.option("--deterministic", is_flag=True,
              help="TF op determinism: a resumed run ends bitwise equal to an uninterrupted one.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def train(data, data_weight, age_prior, crop, fmt, split_file, out, backbone, weights, input_size, epochs, batch_size, lr, loss, freeze_epochs,
          augment, seed, precision, distribute, patience, keep, minor_weight, minor_overshoot_weight, bn_recalibrate, strict,
          cache_dir, limit, deterministic, resume):
    """Train an age regressor and export OUT/model.keras with OUT/model.json.

    \b
    Every epoch writes a checkpoint, history.csv and curves.png; the best model by
    val MAE is kept. Example (CPU, a few minutes):
      agegate train --data ../shared/datasets/utkface --backbone mobilenet_v3_small \\
          --weights none --input-size 96 --epochs 3 --out runs/smoke
    """
    from .loop import run_training

    cfg = TrainConfig(data=list(data), data_weight=list(data_weight), age_prior=age_prior, crop=crop, out=out,
                      format=fmt, split_file=split_file, backbone=backbone, weights=weights,
                      input_size=input_size, epochs=epochs, batch_size=batch_size, lr=lr, loss=loss,
                      freeze_epochs=freeze_epochs, augment=augment, seed=seed, precision=precision,
                      distribute=distribute, patience=patience, keep=keep, minor_weight=minor_weight,
                      minor_overshoot_weight=minor_overshoot_weight,
                      bn_recalibrate=bn_recalibrate, strict=strict, cache_dir=cache_dir, limit=limit,
                      deterministic=deterministic)
    run_training(cfg, resume=resume, echo=click.echo)
