"""Checkpointing of a training run: every epoch ends with an atomic model save and a state.json that names it.

A kill at any moment leaves state.json on the previous, complete checkpoint, so `--resume` continues
from a consistent state; old checkpoints are deleted only after the new one is named.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.errors import AgegateError, UsageError

STATE_FILE = "state.json"


def check_new_run_folder(out: Path, command: str) -> None:
    """Refuse a run folder that already holds a model: `train`, `average` and `recover` write a new one, and
    writing over another run's model.keras loses it (`average a b --out a` would have replaced one of its
    own sources). Checked before any work, so the refusal costs nothing."""
    if (out / MODEL_FILE).exists():
        raise UsageError(f"{out} already holds a model ({out / MODEL_FILE}); {command} writes a new run folder: "
                         f"choose another --out, or move that run away first")


def atomic_save(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    try:
        model.save(str(tmp))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise AgegateError(
            f"could not write {path} ({e.strerror or e}); the previous checkpoint there is intact. "
            f"Free disk space and rerun with --resume."
        ) from e


def atomic_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def new_state() -> dict:
    return {"epoch": 0, "best_val_mae": None, "best_epoch": None, "bad_epochs": 0, "phase": None, "history": []}


def load_state(ckpt_dir: Path) -> dict:
    path = ckpt_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or "epoch" not in state:
            raise ValueError("not a run's state")
    except (OSError, ValueError) as e:  # written atomically by agegate: another program's hand, or a failed disk
        raise AgegateError(f"{path}: the run's state does not read ({e}); the checkpoints beside it are intact, "
                           f"but --resume cannot tell which is the newest: start a new run with another --out, "
                           f"or give it --weights {ckpt_dir}/<newest epoch-NNN.keras> to continue from one") from e
    return state


def save_epoch(model, ckpt_dir: Path, state: dict, epoch: int) -> None:
    """Checkpoint after `epoch` (1-based): the model, then state.json naming it, then the older ones go."""
    name = f"epoch-{epoch:03d}.keras"
    atomic_save(model, ckpt_dir / name)
    state["checkpoint"] = name
    atomic_json(ckpt_dir / STATE_FILE, state)
    for old in ckpt_dir.glob("epoch-*.keras"):
        if old.name != name:
            old.unlink(missing_ok=True)


def kept(state: dict) -> tuple[int, float]:
    """(epoch, val MAE) of the exported model.keras: the best epoch, or the last with --keep last."""
    return state.get("kept_epoch", state["best_epoch"]), state.get("kept_val_mae", state["best_val_mae"])
