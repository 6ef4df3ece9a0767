"""The model that ships inside the package (agegate/edge/assets/default_model.tflite + .json)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ModelError

DEFAULT_NAME = "default_model.tflite"


def assets_dir() -> Path:
    return Path(str(resources.files("agegate.edge.assets")))


def default_model_path() -> Path:
    p = assets_dir() / DEFAULT_NAME
    if not p.exists():
        raise ModelError(f"{p}: the shipped default model is missing from this install; pass --model PATH")
    return p


def resolve_model(path: str | None) -> Path:
    """--model PATH, or the shipped default when none is given."""
    return Path(path) if path else default_model_path()
