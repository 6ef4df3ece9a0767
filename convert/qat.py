"""Quantization-aware fine-tuning with tensorflow-model-optimization (tf_keras only).

`quantize_model` needs a flat functional model: train.backbones builds every model
that way. It supports ResNet50 and MobileNetV2 with its default config; MobileNetV3
(TFOpLambda) and EfficientNet (Rescaling) need custom quantize configs and are
refused with a clear message rather than failing deep inside tfmot.
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
    qmodel = tfmot.quantization.keras.quantize_model(model)
    _init_output_range(qmodel, model, data, meta)
    loss, mae = compile_objects(keras, meta.head, "huber")  # the head's own training loss (train/losses.py)
    qmodel.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=[mae])
    for epoch in range(epochs):
        keras.utils.set_random_seed(seed + epoch)
        ds = make_dataset(data, meta.preprocess, batch_size, training=True, augment="light", seed=seed, epoch=epoch)
        hist = qmodel.fit(ds, epochs=1, verbose=2)
        echo(f"QAT epoch {epoch + 1}/{epochs}: train MAE {hist.history['mae'][-1]:.3f}")
    return qmodel


def _init_output_range(qmodel, model, data, meta, n: int = 512) -> None:
    """Start the age output's fake-quant range where the float model's predictions are.

    tfmot starts every activation range at [-6, 6]. For a regression head that outputs
    years, that clips almost every prediction, QAT's first thousand steps train against
    the clipping (MAE ~20), and the moving-average range only creeps towards the truth.
    """

    import numpy as np

    from agegate.edge.preprocess import normalize
    from agegate.train.inputs import model_inputs

    x = normalize(model_inputs(data, meta.preprocess, np.arange(min(n, len(data.ages)))), meta.preprocess)
    pred = model.predict(x, verbose=0).reshape(-1)
    if meta.head.is_distribution:  # logits: their own range, with a margin
        span = float(pred.max() - pred.min())
        lo, hi = float(pred.min() - 0.1 * span), float(pred.max() + 0.1 * span)
    else:  # years: from 0 to past the oldest label
        lo, hi = float(min(0.0, pred.min())), float(max(pred.max(), data.ages.max()) * 1.1)
    out = qmodel.layers[-1]
    for w in out.weights:
        if w.name.endswith(("post_activation_min:0", "output_min:0")):
            w.assign(lo)
        elif w.name.endswith(("post_activation_max:0", "output_max:0")):
            w.assign(hi)
