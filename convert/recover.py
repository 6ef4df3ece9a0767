"""`agegate recover`: a trainable float model rebuilt from a converted .tflite whose float parent is lost.

Why: the shipped v2 model's training run was not kept, so it could be neither re-converted (mixed int8,
which flips 4x fewer ID decisions) nor fine-tuned. A .tflite of an agegate model holds all its weights,
each tensor named after the Keras layer it came from; what conversion changed can be undone:

- **int8 weights** are dequantized with their own per-channel scales (`dequantize`): the recovered model
  carries the int8 model's weight rounding, not the parent's exact weights, and none of its activation
  rounding (so it is close to the parent, never equal to it).
- **BatchNorm was folded** into each convolution's kernel and bias. The recovered model gets its
  BatchNorm layers back with statistics re-measured on real images (`restore_batchnorm`): in inference
  they compute exactly the folded function, and in training their batch statistics start where the
  moving ones are, so fine-tuning does not begin with a jolt.

The result is an ordinary run folder (`model.keras` + `model.json`): `eval`, `convert` and
`train --weights` take it. It is marked `recovered_from` in its metadata; QA against a recovered parent
measures activation rounding only, and its report says so.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.errors import ModelError, UsageError
from agegate.edge.metadata import ModelMetadata, now_iso, read_metadata, sha256_file, write_metadata

from .tflite import calibration_images

WEIGHTED_OPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}


@dataclass(frozen=True)
class LayerWeights:
    """One weighted layer of a .tflite, in Keras's layout: kernel (h, w, in, out) for a convolution,
    (h, w, channels, 1) depthwise, (in, out) dense; bias (out,) (the folded BatchNorm shift)."""

    layer: str
    kind: str
    kernel: np.ndarray
    bias: np.ndarray


def dequantize(values: np.ndarray, qparams: dict) -> np.ndarray:
    """A constant tensor as float32: int8/int32 values with their (per-channel) scales and zero points,
    or float values as they are."""
    if values.dtype in (np.float32, np.float16):
        return values.astype(np.float32)
    scales = np.asarray(qparams["scales"], np.float64)
    zeros = np.asarray(qparams["zero_points"], np.float64)
    if scales.size == 0:
        raise ModelError(f"a {values.dtype} weight tensor without quantization parameters")
    if scales.size > 1:  # per channel, along quantized_dimension
        shape = [1] * values.ndim
        shape[int(qparams["quantized_dimension"])] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((values.astype(np.float64) - zeros) * scales).astype(np.float32)


def to_keras_layout(kind: str, kernel: np.ndarray) -> np.ndarray:
    """TFLite kernel layouts -> Keras: conv (out, h, w, in) -> (h, w, in, out); depthwise (1, h, w, c) ->
    (h, w, c, 1); dense (out, in) -> (in, out)."""
    if kind == "dense":
        return kernel.T
    return kernel.transpose(1, 2, 3, 0)


def _layer_name(tensor_name: str, model_name: str, kernel_layers: set[str]) -> str:
    """The Keras layer a converted weight tensor came from. Tensors keep the layer path, and a folded one
    joins several with ';' ('m/block_1_depthwise_BN/FusedBatchNormV3;m/block_1_depthwise/depthwise'):
    the one naming a convolution or dense layer of the model is it."""
    for part in tensor_name.split(";"):
        names = part.split("/")
        if len(names) >= 2 and names[0] == model_name and names[1] in kernel_layers:
            return names[1]
    raise ModelError(f"weight tensor {tensor_name!r} names no convolution or dense layer of {model_name}; "
                     f"was this file converted by agegate from this backbone?")


def read_tflite_weights(path: Path, model_name: str, kernel_layers: set[str]) -> list[LayerWeights]:
    """Every convolution and dense layer of an agegate .tflite, dequantized, in graph order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default delegate: XNNPACK would take the ops over and hide their inputs.
    it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}
    out: list[LayerWeights] = []
    for op in it._get_ops_details():  # noqa: SLF001 - LiteRT's only view of the graph's ops
        kind = WEIGHTED_OPS.get(op["op_name"])
        if kind is None:
            continue
        inputs = [int(i) for i in op["inputs"]]
        w_idx, b_idx = inputs[1], (inputs[2] if len(inputs) > 2 else -1)  # -1: an op without a bias
        w = details[w_idx]
        kernel = dequantize(it.get_tensor(w_idx), w["quantization_parameters"])
        bias = dequantize(it.get_tensor(b_idx), details[b_idx]["quantization_parameters"]) if b_idx >= 0 else \
            np.zeros(kernel.shape[-1 if kind == "depthwise" else 0], np.float32)
        out.append(LayerWeights(_layer_name(w["name"], model_name, kernel_layers), kind, to_keras_layout(kind, kernel), bias))
    if not out:
        raise ModelError(f"{path}: no convolution or dense layer found")
    return out


def kernel_layers(model, keras) -> list[str]:
    """The model's convolution (depthwise included) and dense layers: the ones a .tflite keeps."""
    return [l.name for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense))]


def _batchnorm_after(model, layer, keras):
    """The BatchNormalization layer fed by `layer`, or None."""
    for node in layer._outbound_nodes:  # noqa: SLF001 - tf_keras's graph links
        nxt = node.outbound_layer
        if isinstance(nxt, keras.layers.BatchNormalization):
            return nxt
    return None


def load_folded(model, weights: list[LayerWeights], keras) -> dict:
    """Put the .tflite's weights into `model` (a freshly built agegate model of the same backbone and
    head). A convolution's folded bias goes into the BatchNorm after it, set to the identity, so the
    model computes exactly the converted graph's float function. Returns {conv layer: its BatchNorm}."""
    layers = {l.name: l for l in model.layers}
    folded = {}
    for lw in weights:
        layer = layers.get(lw.layer)
        if layer is None:
            raise ModelError(f"the .tflite has a layer {lw.layer!r} that a fresh {model.name} lacks; "
                             f"is --backbone right?")
        shapes = [tuple(v.shape) for v in layer.weights]
        if lw.kind == "dense":
            if shapes != [lw.kernel.shape, lw.bias.shape]:
                raise ModelError(f"{lw.layer}: the .tflite has {lw.kernel.shape}, the model {shapes}")
            layer.set_weights([lw.kernel, lw.bias])
            continue
        if shapes[0] != lw.kernel.shape:
            raise ModelError(f"{lw.layer}: the .tflite kernel is {lw.kernel.shape}, the model's {shapes[0]}; "
                             f"is --input-size or --backbone wrong?")
        bn = _batchnorm_after(model, layer, keras)
        if bn is None or len(shapes) != 1:
            raise ModelError(f"{lw.layer}: expected a bias-free convolution followed by BatchNorm")
        layer.set_weights([lw.kernel])
        ones = np.ones_like(lw.bias)
        # gamma, beta, moving mean, moving variance: x -> (x - 0) / sqrt(var + eps) * 1 + bias = x + bias
        bn.set_weights([ones, lw.bias, np.zeros_like(lw.bias), ones - bn.epsilon])
        folded[layer.name] = bn
    missing = [name for name in kernel_layers(model, keras) if name not in {w.layer for w in weights}]
    if missing:
        raise ModelError(f"the .tflite lacks weights for {', '.join(missing[:5])}; is --backbone right?")
    return folded


def restore_batchnorm(model, folded: dict, images: np.ndarray, keras, batch: int = 32) -> None:
    """Give each identity BatchNorm the statistics of its input on real images, without changing what the
    model computes in inference: with mean m and variance v measured, gamma = sqrt(v + eps) and beta =
    bias + m undo the normalisation exactly, and a training batch's statistics start near (m, v)."""
    bns = list(folded.values())
    probe = keras.Model(model.input, [bn.input for bn in bns])
    count = np.zeros(len(bns))
    sums: list = [0.0] * len(bns)
    squares: list = [0.0] * len(bns)
    for start in range(0, len(images), batch):
        outs = probe(images[start:start + batch], training=False)
        for i, o in enumerate(outs if isinstance(outs, (list, tuple)) else [outs]):
            o = np.asarray(o, np.float64).reshape(-1, o.shape[-1])
            count[i] += len(o)
            sums[i] = sums[i] + o.sum(0)
            squares[i] = squares[i] + (o * o).sum(0)
    for i, bn in enumerate(bns):
        mean = sums[i] / count[i]
        var = np.maximum(squares[i] / count[i] - mean * mean, 1e-6)
        _, beta, _, _ = bn.get_weights()
        bn.set_weights([np.sqrt(var + bn.epsilon).astype(np.float32), (beta + mean).astype(np.float32),
                        mean.astype(np.float32), var.astype(np.float32)])


def recover(tflite: Path, records, out: Path, images: int = 512) -> ModelMetadata:
    """tflite + real images (for the BatchNorm statistics, seen through the model's own crop policy) ->
    run folder `out` (model.keras + model.json). Returns the new metadata."""
    from agegate.train.backbones import build_model
    from agegate.train.checkpoints import atomic_save, check_new_run_folder
    from agegate.train.tfenv import import_tf

    if tflite.suffix != ".tflite":
        raise UsageError(f"{tflite}: expected a .tflite file")
    check_new_run_folder(out, "recover")
    meta = read_metadata(tflite)
    _, keras = import_tf()
    model, _ = build_model(meta.backbone, meta.preprocess.input_size, "none", head=meta.head)
    weights = read_tflite_weights(tflite, model.name, set(kernel_layers(model, keras)))
    folded = load_folded(model, weights, keras)
    batch = calibration_images(records, meta.preprocess, images)
    restore_batchnorm(model, folded, batch, keras)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(model, out / MODEL_FILE)
    source = sha256_file(tflite)
    recovered = replace(
        meta, quantization="none", bundle=None, source_sha256=sha256_file(out / MODEL_FILE), created=now_iso(),
        extra={**meta.extra, "recovered_from": {"file": tflite.name, "sha256": source,
                                                "quantization": meta.quantization,
                                                "batchnorm_images": int(len(batch))}})
    write_metadata(out / MODEL_FILE, recovered)
    return recovered
