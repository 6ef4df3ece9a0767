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


def write_history(out: Path, history: list[dict]) -> None:
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        w.writerows(history)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ep = [h["epoch"] for h in history]
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
        ax[0].set_xlabel("epoch"); ax[0].set_title("loss"); ax[0].legend()
        ax[1].plot(ep, [h["train_mae"] for h in history], "o-", label="train MAE")
        ax[1].plot(ep, [h["val_mae"] for h in history], "o-", label="val MAE")
        ax[1].set_xlabel("epoch"); ax[1].set_ylabel("years"); ax[1].set_title("MAE"); ax[1].legend()
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=90)
        plt.close(fig)
    except Exception as e:  # noqa: BLE001 - a plot must never fail a training run
        log.warning("could not draw curves.png: %s", e)
