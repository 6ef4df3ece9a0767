"""Quantization-aware fine-tuning with tensorflow-model-optimization (tf_keras only).

`quantize_model` needs a flat functional model: train.backbones builds every model
that way. It supports the backbones the registry marks `qat`; MobileNetV3 (TFOpLambda) and
EfficientNet (Rescaling) need custom quantize configs and are refused with a clear message
rather than failing deep inside tfmot.

Two things differ from tfmot's defaults, both so that training sees the rounding the .tflite
will have: every activation range starts at the float model's own (`init_activation_ranges`),
and depthwise kernels are rounded per channel (`quantize_model`).
"""
from __future__ import annotations

from agegate.edge.errors import MissingExtraError, UsageError
from agegate.edge.metadata import ModelMetadata


def qat_finetune(model, meta: ModelMetadata, records, *, epochs: int = 1, batch_size: int = 32, lr: float = 2e-5,
                 seed: int = 0, echo=print):
    from agegate.train.backbones import BACKBONES, get_backbone
    from agegate.train.inputs import decode_records, make_dataset
    from agegate.train.losses import compile_objects
    from agegate.train.tfenv import import_tf

    tf, keras = import_tf()
    if not get_backbone(meta.backbone).qat:
        supported = ", ".join(s.name for s in BACKBONES.values() if s.qat)
        raise UsageError(f"QAT supports {supported}; {meta.backbone} needs a custom quantize config "
                         f"(tfmot cannot wrap its layers). Use post-training int8 instead.")
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as e:
        raise MissingExtraError("train", "tensorflow-model-optimization") from e
    data = decode_records(records, meta.preprocess, desc="qat")
    qmodel = quantize_model(model)
    x = _range_images(data, meta)
    init_activation_ranges(qmodel, model, x)
    _init_output_range(qmodel, model, x, data, meta)
    loss, mae = compile_objects(keras, meta.head, "huber")  # the head's own training loss (train/losses.py)
    qmodel.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=[mae])
    for epoch in range(epochs):
        keras.utils.set_random_seed(seed + epoch)
        ds = make_dataset(data, meta.preprocess, batch_size, training=True, augment="light", seed=seed, epoch=epoch)
        hist = qmodel.fit(ds, epochs=1, verbose=2)
        echo(f"QAT epoch {epoch + 1}/{epochs}: train MAE {hist.history['mae'][-1]:.3f}")
    return qmodel


def quantize_model(model):
    """tfmot's `quantize_model` with the one change TFLite's int8 needs: depthwise kernels rounded per channel.

    Why: tfmot's default scheme gives a depthwise kernel (kh, kw, channels, 1) one range per entry of its
    last axis, the depth multiplier, so one range for the whole kernel; TFLite folds BatchNorm in and
    rounds each channel with its own range. QAT then trains against a rounding the .tflite does not
    have: in MobileNetV2 a channel with small weights rounds to almost nothing, and BatchNorm's
    statistics learn that. Measured on the clean-labels candidate (one epoch on 3,000 train images):
    the QAT model's variables in the float model parted from it at the first depthwise BatchNorm (37 %)
    and erred 16.2 years on val (benchmarks/results/candidate-clean-labels/rule-v2.5-conversion.md).
    Rounding per channel before BatchNorm is the same as after it (BatchNorm scales each channel).
    """
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_apply(tfmot.quantization.keras.quantize_annotate_model(model),
                                                   scheme=_per_channel_depthwise_scheme())


def _per_channel_depthwise_scheme():
    # tfmot 0.8 exposes no public hook for one layer type's weight quantizer in the default scheme: the
    # registry and scheme classes below are its internals (pinned in pyproject.toml).
    from tensorflow_model_optimization.python.core.quantization.keras import quantizers
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_scheme as scheme,
    )

    from agegate.train.tfenv import import_tf

    tf, keras = import_tf()

    class DepthwiseKernelPerChannel(quantizers.LastValueQuantizer):
        """Symmetric int8 with one range per output channel (channels x depth multiplier), as TFLite's."""

        def __init__(self):
            super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

        def build(self, tensor_shape, name, layer):
            channels = int(tensor_shape[2]) * int(tensor_shape[3])
            init = keras.initializers.Constant
            return {"min_var": layer.add_weight(name + "_min", shape=(channels,), initializer=init(-6.0),
                                                trainable=False),
                    "max_var": layer.add_weight(name + "_max", shape=(channels,), initializer=init(6.0),
                                                trainable=False)}

        def __call__(self, inputs, training, weights, **kwargs):
            kh, kw, c, m = inputs.shape
            flat = tf.reshape(inputs, (kh, kw, 1, c * m))  # the per-axis quantizer ranges the last axis
            return tf.reshape(super().__call__(flat, training, weights, **kwargs), (kh, kw, c, m))

        def get_config(self):
            return {}

    class Registry(registry.Default8BitQuantizeRegistry):
        def __init__(self):
            super().__init__(disable_per_axis=False)
            config = registry.Default8BitConvQuantizeConfig(["depthwise_kernel"], ["activation"], False)
            config.weight_quantizer = DepthwiseKernelPerChannel()
            self._layer_quantize_map[keras.layers.DepthwiseConv2D] = config

    class Scheme(scheme.Default8BitQuantizeScheme):
        def get_quantize_registry(self):
            return Registry()

    return Scheme()


def _range_images(data, meta: ModelMetadata, n: int = 512):
    """Up to `n` of the training images as the model takes them (normalised, un-augmented)."""
    import numpy as np

    from agegate.edge.preprocess import normalize
    from agegate.train.inputs import model_inputs

    return normalize(model_inputs(data, meta.preprocess, np.arange(min(n, len(data.ages)))), meta.preprocess)


def init_activation_ranges(qmodel, model, x, batch_size: int = 32) -> int:
    """Start every fake-quant activation range at the float model's own range on `x` (the min and max of each
    layer's output, as int8 post-training calibration takes them); returns how many ranges were set.

    Why: tfmot starts each range at [-6, 6] (the input's at [0, 0]) and moves it by a moving average
    (decay 0.999), so a short fine-tune trains through ranges that clip every linear layer's output
    (projections, residual sums, logits). Measured on the clean-labels candidate (MobileNetV2 112 px,
    distribution head; one epoch on 3,000 train images, lr 2e-5): its int8 file erred 6.23 years on val
    against the float parent's 5.35; with the ranges started here, 5.56
    (benchmarks/results/candidate-clean-labels/conversion-probe/qat_probe.py).
    """
    import numpy as np

    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    quantized = {getattr(ql, "layer", ql).name: ql for ql in qmodel.layers}
    names = [l.name for l in model.layers if not isinstance(l, keras.layers.InputLayer) and l.name in quantized]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    for i in range(0, len(x), batch_size):
        for n, out in zip(names, probe(x[i:i + batch_size], training=False)):
            out = np.asarray(out)
            lo[n], hi[n] = min(lo[n], float(out.min())), max(hi[n], float(out.max()))
    n_set = 0
    for ql in qmodel.layers:
        if type(ql).__name__ == "QuantizeLayer":  # the model input's quantizer
            n_set += _set_range(ql, min(0.0, float(x.min())), max(0.0, float(x.max())), INPUT_RANGE_VARS)
        elif getattr(ql, "layer", None) is not None and ql.layer.name in lo:
            n_set += _set_range(ql, min(0.0, lo[ql.layer.name]), max(0.0, hi[ql.layer.name]))
    return n_set


# The variables that hold a fake-quant range: (min names, max names). A wrapped layer's output range is
# `output_*` or, after an activation, `post_activation_*`; the model input's quantizer has its own.
OUTPUT_RANGE_VARS = (("post_activation_min:0", "output_min:0"), ("post_activation_max:0", "output_max:0"))
INPUT_RANGE_VARS = (("quantize_layer_min:0",), ("quantize_layer_max:0",))


def _set_range(layer, lo: float, hi: float, names=OUTPUT_RANGE_VARS) -> int:
    """Set a quantized layer's range variables to [lo, hi]; returns how many were set."""
    n_set = 0
    for w in layer.weights:
        for value, ends in zip((lo, hi), names):
            if w.name.endswith(ends):
                w.assign(value)
                n_set += 1
    return n_set


def _init_output_range(qmodel, model, x, data, meta) -> None:
    """Start the age output's fake-quant range where the float model's predictions are, with room.

    A regression head outputs years: its range runs from 0 to past the oldest label (the float model's
    predictions on a sample may stop short of the ages it must still express); logits keep their own
    range with a 10 % margin.
    """
    pred = model.predict(x, verbose=0).reshape(-1)
    if meta.head.is_distribution:  # logits: their own range, with a margin
        span = float(pred.max() - pred.min())
        lo, hi = float(pred.min() - 0.1 * span), float(pred.max() + 0.1 * span)
    else:  # years: from 0 to past the oldest label
        lo, hi = float(min(0.0, pred.min())), float(max(pred.max(), data.ages.max()) * 1.1)
    _set_range(qmodel.layers[-1], lo, hi)
