"""Training losses, including the Challenge-25 asymmetric one.

Why asymmetric: the checkout's costly error is a minor estimated as an adult (no ID
asked). Weighting minors up (`--minor-weight`) pulls their estimates towards the truth
from both sides; `--minor-overshoot-weight` penalises only estimates *above* a minor's
true age, which pushes the errors that can pass a minor as 25+ without asking the model
to be more accurate on the harmless side. Adults keep the plain loss.
"""
from __future__ import annotations

from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE

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


DIST_LOSS_NAME = "AgeDistributionLoss"


def split_targets(tf, y_true, n_bins: int):
    """(age (N, 1), teachers' distribution (N, bins) or None): a distillation label carries both
    (train/distill.py), a plain one the age alone."""
    if y_true.shape.rank == 2 and y_true.shape[-1] == 1 + n_bins:
        return y_true[:, :1], y_true[:, 1:]
    return tf.reshape(y_true, (-1, 1)), None
LABEL_SIGMA = 2.0  # years: the label distribution of DLDL-v2 (Gao et al. 2018), which found 1-3 equally good


def age_distribution_loss_class(keras):
    """Label-distribution loss for a distribution head (logits, one per year), registered like AgeLoss.

    KL divergence from a Gaussian around the true age (sigma 2 years: neighbouring ages look alike,
    so the model learns a spread rather than a one-hot) plus the L1 error of the distribution's
    mean (DLDL-v2): the first shapes the distribution, the second the point estimate that MAE judges.
    `minor_overshoot_weight` acts on the mean as in AgeLoss.

    Distillation (train/distill.py): `y_true` is then (N, 1 + bins), the age and the teachers' mean
    distribution, and the KL target is `(1 - distill_weight) * Gaussian + distill_weight * teachers`
    (a row of zeros, no teacher saw the face: the Gaussian alone). The L1 term stays on the label.

    Challenge 25 (`c25_weight`): the box asks for ID on P(under 25), the distribution's mass below 25,
    and what it costs is that mass on minors (low: passed) and on adults 25+ (high: asked). The KL term
    spreads its attention over all 101 bins, so it adds `c25_weight` times the binary cross-entropy of
    P(under 25) against "under 18" (target 1) or "25 or over" (target 0); images aged 18-24 add nothing
    (the law asks for ID there, and either answer is defensible). 0: off.
    """
    import tensorflow as tf

    registered = keras.utils.get_registered_object(f"agegate>{DIST_LOSS_NAME}")
    if registered is not None:
        return registered

    @keras.utils.register_keras_serializable(package="agegate", name=DIST_LOSS_NAME)
    class AgeDistributionLoss(keras.losses.Loss):
        def __init__(self, min_age: int = 0, n_bins: int = 101, sigma: float = LABEL_SIGMA, l1_weight: float = 1.0,
                     minor_overshoot_weight: float = 1.0, distill_weight: float = 0.0, c25_weight: float = 0.0,
                     name: str = "age_distribution_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.min_age, self.n_bins, self.sigma = int(min_age), int(n_bins), float(sigma)
            self.l1_weight, self.minor_overshoot_weight = float(l1_weight), float(minor_overshoot_weight)
            self.distill_weight, self.c25_weight = float(distill_weight), float(c25_weight)

        def call(self, y_true, y_pred):
            ages = tf.range(self.min_age, self.min_age + self.n_bins, dtype=y_pred.dtype)
            y, teacher = split_targets(tf, tf.cast(y_true, y_pred.dtype), self.n_bins)
            target = tf.exp(-0.5 * tf.square((ages[None, :] - y) / self.sigma))
            target = target / tf.reduce_sum(target, axis=1, keepdims=True)
            if teacher is not None:
                mixed = (1.0 - self.distill_weight) * target + self.distill_weight * teacher
                target = tf.where(tf.reduce_sum(teacher, axis=1, keepdims=True) > 0, mixed, target)
            logp = tf.nn.log_softmax(y_pred, axis=1)
            kl = tf.reduce_sum(target * (tf.math.log(target + 1e-12) - logp), axis=1)
            mean = tf.reduce_sum(tf.exp(logp) * ages[None, :], axis=1)
            y1 = tf.reshape(y, (-1,))
            l1 = tf.abs(mean - y1)
            overshoot = tf.logical_and(y1 < MINOR_AGE, mean > y1)
            weight = tf.where(overshoot, tf.cast(self.minor_overshoot_weight, l1.dtype), tf.ones_like(l1))
            loss = (kl + self.l1_weight * l1) * weight
            if self.c25_weight > 0:
                loss = loss + self.c25_weight * challenge25_bce(tf, logp, ages, y1)
            return loss

        def get_config(self):
            return {**super().get_config(), "min_age": self.min_age, "n_bins": self.n_bins, "sigma": self.sigma,
                    "l1_weight": self.l1_weight, "minor_overshoot_weight": self.minor_overshoot_weight,
                    "distill_weight": self.distill_weight, "c25_weight": self.c25_weight}

    return AgeDistributionLoss


def challenge25_bce(tf, logp, ages, y):
    """Per image: cross-entropy of P(under 25) = the mass of bins below CHALLENGE_AGE, against 1 for a minor
    and 0 for an adult of 25 or over; 0 for ages 18-24. Computed from log-probabilities (logsumexp) so a
    confident model's tiny masses do not underflow to log(0)."""
    under = ages[None, :] < CHALLENGE_AGE
    very_negative = tf.fill(tf.shape(logp), tf.cast(-1e9, logp.dtype))
    log_under = tf.reduce_logsumexp(tf.where(under, logp, very_negative), axis=1)
    log_over = tf.reduce_logsumexp(tf.where(under, very_negative, logp), axis=1)
    zero = tf.zeros_like(y)
    return tf.where(y < MINOR_AGE, -log_under, tf.where(y >= CHALLENGE_AGE, -log_over, zero))


def expected_age_mae_class(keras):
    """MAE of the distribution's mean, named `mae` like the regression metric so history and val agree."""
    import tensorflow as tf

    registered = keras.utils.get_registered_object("agegate>ExpectedAgeMAE")
    if registered is not None:
        return registered

    @keras.utils.register_keras_serializable(package="agegate", name="ExpectedAgeMAE")
    class ExpectedAgeMAE(keras.metrics.Mean):
        def __init__(self, min_age: int = 0, n_bins: int = 101, name: str = "mae", **kwargs):
            super().__init__(name=name, **kwargs)
            self.min_age, self.n_bins = int(min_age), int(n_bins)

        def update_state(self, y_true, y_pred, sample_weight=None):
            ages = tf.range(self.min_age, self.min_age + self.n_bins, dtype=y_pred.dtype)
            mean = tf.reduce_sum(tf.nn.softmax(y_pred, axis=1) * ages[None, :], axis=1)
            y, _ = split_targets(tf, tf.cast(y_true, y_pred.dtype), self.n_bins)
            err = tf.abs(mean - tf.reshape(y, (-1,)))
            return super().update_state(err, sample_weight=sample_weight)

        def get_config(self):
            return {**super().get_config(), "min_age": self.min_age, "n_bins": self.n_bins}

    return ExpectedAgeMAE


def custom_objects(keras) -> dict:
    """Everything a saved training checkpoint may name, for `load_model` on --resume."""
    return {"AgeLoss": age_loss_class(keras), DIST_LOSS_NAME: age_distribution_loss_class(keras),
            "ExpectedAgeMAE": expected_age_mae_class(keras)}


def compile_objects(keras, head, kind: str, minor_overshoot_weight: float = 1.0,
                    distill_weight: float = 0.0, c25_weight: float = 0.0) -> tuple[object, object]:
    """(loss, MAE metric) for a model with this head (edge.age_head.AgeHead)."""
    if head.is_distribution:
        return (age_distribution_loss_class(keras)(min_age=head.min_age, n_bins=head.n_bins,
                                                   minor_overshoot_weight=minor_overshoot_weight,
                                                   distill_weight=distill_weight, c25_weight=c25_weight),
                expected_age_mae_class(keras)(min_age=head.min_age, n_bins=head.n_bins))
    return make_loss(keras, kind, minor_overshoot_weight), keras.metrics.MeanAbsoluteError(name="mae")
