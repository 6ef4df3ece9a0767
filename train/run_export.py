"""What a finished training run leaves besides its model: model.json (metadata for eval, convert, QA and the
box), history.csv and curves.png."""
from __future__ import annotations

import csv
import logging
from dataclasses import asdict
from pathlib import Path

from agegate.edge import __version__
from agegate.edge.contracts import MODEL_FILE
from agegate.edge.metadata import ModelMetadata, write_metadata
from agegate.edge.preprocess import PreprocessSpec

from .checkpoints import kept
from .config import TrainConfig
from .sources import combined_fingerprint

log = logging.getLogger("agegate.train")
HISTORY_FIELDS = ["epoch", "phase", "lr", "train_loss", "train_mae", "val_mae", "seconds", "images_per_s"]


def export_metadata(out: Path, cfg: TrainConfig, spec: PreprocessSpec, sources, train_data, val_data,
                    state, teachers=None, excluded=()) -> None:
    from agegate.edge.metadata import sha256_file

    no_face = set(train_data.no_face) | set(val_data.no_face)
    listed = []
    for src in sources:
        mine = sorted(str(r.path) for r in src.train + src.val if str(r.path) in no_face)
        listed.append({**src.summary(), "no_face": mine})

    lo, hi = float(train_data.ages.min()), float(train_data.ages.max())
    meta = ModelMetadata(
        backbone=cfg.backbone, input_size=spec.input_size, preprocess=spec, age_range=(lo, hi), head=cfg.age_head(),
        quantization="none", source_sha256=sha256_file(out / MODEL_FILE), data_fingerprint=combined_fingerprint(sources),
        metrics={cfg.val_split: {"mae": round(kept(state)[1], 4), "n": int(len(val_data.ages))}},
        agegate_version=__version__,
        extra={"train_config": asdict(cfg), "best_epoch": state["best_epoch"], "exported_epoch": kept(state)[0],
               "trained_epochs": state["epoch"],  # of cfg.epochs: fewer while a run is stopped or still going
               "data_format": sources[0].dataset.format, "sources": listed,
               "split_sizes": {"train": int(len(train_data.ages)), cfg.val_split: int(len(val_data.ages))},
               "skipped_unreadable": len(train_data.skipped) + len(val_data.skipped),
               "no_face": len(no_face),
               **({"excluded_as_mislabelled": [e.to_dict() for e in excluded]} if excluded else {}),
               **({"distillation": teachers.summary(cfg.distill_weight, cfg.teacher_view)} if teachers is not None else {})},
    )
    write_metadata(out / MODEL_FILE, meta)


def write_history(out: Path, history: list[dict], kept_epoch: int | None = None) -> None:
    """history.csv and curves.png (`draw_curves`)."""
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        w.writerows(history)
    try:
        from agegate.edge.figures import save_figure

        save_figure(draw_curves(history, kept_epoch), out / "curves.png")
    except Exception as e:  # noqa: BLE001 - a plot must never fail a training run
        log.warning("could not draw curves.png: %s", e)


def draw_curves(history: list[dict], kept_epoch: int | None = None):
    """Loss and MAE by epoch (whole epochs on the axis), the epoch model.keras holds starred (`kept_epoch`) and the
    epochs trained with the backbone frozen shaded: the curve says which point the run folder ships."""
    from matplotlib.ticker import MaxNLocator

    from agegate.edge.figures import pyplot

    ep = [h["epoch"] for h in history]
    fig, ax = pyplot().subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    ax[0].set_title("loss")
    ax[1].plot(ep, [h["train_mae"] for h in history], "o-", label="train MAE")
    ax[1].plot(ep, [h["val_mae"] for h in history], "o-", label="val MAE")
    ax[1].set_ylabel("years")
    ax[1].set_title("MAE")
    star = next((h for h in history if h["epoch"] == kept_epoch), None)
    if star is not None:
        ax[1].plot([star["epoch"]], [star["val_mae"]], "*", color="black", markersize=12,
                   label=f"kept: epoch {star['epoch']}, val {star['val_mae']:.2f}")
    frozen = [h["epoch"] for h in history if h.get("phase") == "frozen"]
    for a in ax:
        if frozen:
            a.axvspan(min(frozen) - 0.5, max(frozen) + 0.5, color="#dddddd", zorder=0,
                      label="backbone frozen" if a is ax[0] else None)
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.legend(fontsize=8)
    return fig
