"""One predictor for every model file: a Keras run or a .tflite, the same calls.

eval, QA, calibration and replay take a `Predictor`: normalised inputs in, the raw output with the
model's test-time augmentation out; what the output means is the metadata's head (edge/age_head.py).
The .tflite implementation is the box's own `AgeModel`, so what is measured is what the box runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from agegate.edge.metadata import ModelMetadata, TtaViews


class Predictor(Protocol):
    meta: ModelMetadata

    def raw(self, xs: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) normalised inputs -> (N, meta.head.outputs), test-time augmentation included."""
        ...


class KerasPredictor:
    """A trained run folder (or model.keras) with TensorFlow: for float parents and training checks."""

    def __init__(self, path: str | Path, views: TtaViews | None = None):
        """`views`: evaluate with these test-time views instead of the run's own. A run is trained
        without them and `agegate convert --tta` adds them, so QA measures a float parent the way its
        converted child predicts."""
        from .tflite import load_keras_model

        self.model, self.meta = load_keras_model(path)
        if views is not None:
            self.meta = self.meta.with_views(views)
        self._at_size = {self.meta.input_size: self.model}

    def _run(self, x: np.ndarray) -> np.ndarray:
        size = int(x.shape[1])
        if size not in self._at_size:  # a tta_sizes view: the same weights, built for that input
            from .tflite import at_input_size

            self._at_size[size] = at_input_size(self.model, self.meta, size)
        return self._at_size[size].predict(x, verbose=0).reshape(len(x), -1)

    def raw(self, xs: np.ndarray) -> np.ndarray:
        return self.meta.with_tta(self._run, np.asarray(xs, np.float32))


def open_predictor(path: str | Path, threads: int = 2, views: TtaViews | None = None) -> Predictor:
    """A .tflite through the box's runtime, anything else as a Keras run (`views`: KerasPredictor's;
    a .tflite predicts with the views it was converted with, and refuses others)."""
    if Path(path).suffix == ".tflite":
        from agegate.edge.errors import UsageError
        from agegate.edge.runtime import AgeModel

        model = AgeModel(path, threads=threads)
        if views is not None and views != model.meta.views:
            raise UsageError(f"{path} was converted with test-time augmentation {model.meta.views}, not {views}; "
                             f"convert it again with --tta {views.tta}"
                             + "".join(f" --tta-size {s}" for s in views.sizes))
        return model
    return KerasPredictor(path, views)
