"""Training losses, including the Challenge-25 asymmetric one.

Why asymmetric: the checkout's costly error is a minor estimated as an adult (no ID
asked). Weighting minors up (`--minor-weight`) pulls their estimates towards the truth
from both sides; `--minor-overshoot-weight` penalises only estimates *above* a minor's
true age, which pushes the errors that can pass a minor as 25+ without asking the model
to be more accurate on the harmless side. Adults keep the plain loss.
"""
from __future__ import annotations

from agegate.edge.contracts import MINOR_AGE

LOSS_NAME = "AgeLoss"


def age_loss_class(keras):
    """The Keras Loss class, built against the given Keras module (tf_keras) and registered
    for serialisation, so checkpoints that carry it reload for `--resume`."""
    import tensorflow as tf

    registered = keras.utils.get_registered_object(f"agegate>{LOSS_NAME}")
    if registered is not None:
        return registered

    @keras.utils.register_keras_serializable(package="agegate", name=LOSS_NAME)
    class AgeLoss(keras.losses.Loss):
        """Huber (delta years) or MAE per image, times `minor_overshoot_weight` where the
        true age is under 18 and the estimate is above it."""

        def __init__(self, kind: str = "huber", delta: float = 2.0, minor_overshoot_weight: float = 1.0,
                     name: str = "age_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.kind, self.delta, self.minor_overshoot_weight = kind, float(delta), float(minor_overshoot_weight)

        def call(self, y_true, y_pred):
            y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), tf.shape(y_pred))
            # Keras's own per-sample losses (mean over the last axis), then the asymmetric weight.
            if self.kind == "huber":
                per = keras.losses.huber(y_true, y_pred, delta=self.delta)
            else:
                per = keras.losses.mean_absolute_error(y_true, y_pred)
            overshoot = tf.reduce_any(tf.logical_and(y_true < MINOR_AGE, y_pred > y_true), axis=-1)
            return per * tf.where(overshoot, tf.cast(self.minor_overshoot_weight, per.dtype), tf.ones_like(per))

        def get_config(self):
            return {**super().get_config(), "kind": self.kind, "delta": self.delta,
                    "minor_overshoot_weight": self.minor_overshoot_weight}

    return AgeLoss


def make_loss(keras, kind: str, minor_overshoot_weight: float = 1.0):
    """The loss `agegate train` compiles with: Huber (delta 2 years) or MAE, optionally asymmetric for minors."""
    return age_loss_class(keras)(kind=kind, delta=2.0, minor_overshoot_weight=minor_overshoot_weight)
