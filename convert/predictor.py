"""One predictor for every model file: a Keras run or a .tflite, the same calls.

eval, QA, calibration and replay take a `Predictor`: normalised inputs in, the raw output with the
model's test-time augmentation out; what the output means is the metadata's head (edge/age_head.py).
The .tflite implementation is the box's own `AgeModel`, so what is measured is what the box runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from agegate.edge.metadata import ModelMetadata


class Predictor(Protocol):
    meta: ModelMetadata

    def raw(self, xs: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) normalised inputs -> (N, meta.head.outputs), test-time augmentation included."""
        ...


class KerasPredictor:
    """A trained run folder (or model.keras) with TensorFlow: for float parents and training checks."""

    def __init__(self, path: str | Path, tta: str | None = None):
        """`tta`: evaluate with this test-time augmentation instead of the run's own. A run is trained
        without it and `agegate convert --tta` adds it, so QA measures a float parent the way its
        converted child predicts."""
        import dataclasses

        from .tflite import load_keras_model

        self.model, self.meta = load_keras_model(path)
        if tta is not None:
            self.meta = dataclasses.replace(self.meta, tta=tta)

    def raw(self, xs: np.ndarray) -> np.ndarray:
        xs = np.asarray(xs, np.float32)
        return self.meta.with_tta(lambda x: self.model.predict(x, verbose=0).reshape(len(x), -1), xs)


def open_predictor(path: str | Path, threads: int = 2, tta: str | None = None) -> Predictor:
    """A .tflite through the box's runtime, anything else as a Keras run (`tta`: KerasPredictor's;
    a .tflite predicts with the augmentation it was converted with, and refuses another)."""
    if Path(path).suffix == ".tflite":
        from agegate.edge.errors import UsageError
        from agegate.edge.runtime import AgeModel

        model = AgeModel(path, threads=threads)
        if tta is not None and tta != model.meta.tta:
            raise UsageError(f"{path} was converted with test-time augmentation {model.meta.tta}, not {tta}; "
                             f"convert it again with --tta {tta}")
        return model
    return KerasPredictor(path, tta)
