"""The one place TensorFlow is imported for the train and convert rooms.

Decision (made once, tested): training uses **tf_keras (Keras 2)** with
TF_USE_LEGACY_KERAS=1, because tensorflow-model-optimization's QAT only works with
it; the model that trains is the model QAT wraps and the converter reads.
"""
from __future__ import annotations

import os
from types import ModuleType

from agegate.edge.errors import MissingExtraError


def import_tf() -> tuple[ModuleType, ModuleType]:
    """(tensorflow, tf_keras), quiet, with legacy Keras selected. Raises MissingExtraError."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from agegate.edge.quiet import quiet_fds

    try:
        with quiet_fds():  # TF's C++ start-up chatter (CUDA probes, oneDNN notes)
            import tensorflow as tf
            import tf_keras
    except ImportError as e:
        raise MissingExtraError("train", e.name or "tensorflow") from e
    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return tf, tf_keras
