"""Mixed int8: rank the layers int8 hurts most, and keep the worst few in float32.

Why: post-training int8 of a MobileNetV2 age model moves each face's estimate far more than its MAE shows.
Measured with `bash benchmarks/mixed_int8.sh RUN seed-mnv2-128` (the backbone comparison's MobileNetV2
128 px distribution run; `agegate qa` on 500 val images of each of UTKFace and AAF, box crops, no test-time
augmentation; 500 calibration images from both train splits; benchmarks/results/mixed-int8/): full int8
moves a face by 2.78 years on average (p95 7.9; MAE moves by -0.41, the errors cancel) and flips 4.0 % of
ID checks (age < 25). The float32 .tflite matches its Keras parent (0.00 years), so the conversion is not
the cause; int8 weights with float activations (`--quant dynamic`) move faces 0.64 years (1.6 % flips):
most of the damage is in the int8 activations. TFLite's quantization debugger ranks the
first depthwise convolution (1.30 steps) and the first convolution (0.94) far above the rest (0.53 and
below); both are ReLU6 outputs, quantized in 256 steps over 0-6. Those two in
float: 0.91 years (p95 2.7), flips 1.8 %, MAE drift 0.00; one alone: 1.97 years, 4.3 %; four: 0.92, 2.0 %.
The file grows by 2 KB, and it ran faster than full int8 (1.78 against 1.88 ms at 2 threads; AMD EPYC,
benchmarks/results/starts-and-mixed-int8-latency.json).

The ranking is TFLite's own (`QuantizationDebugger.layer_statistics_dump`): per layer, the RMSE between
its int8 output and the float layer's output, divided by the layer's quantization step. A well quantized
layer sits near 0.29 (uniform rounding error alone); the first layers above sat at 1.30 and 0.94.

Cost: a file with float ops is not integer-only. The box's CPU runtime (LiteRT with XNNPACK) runs both;
an integer-only accelerator (Edge TPU, many NPUs) would run the float ops on the CPU or refuse the file.
The metadata says `quantization: int8-mixed` and lists the float layers.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass

import numpy as np

from agegate.edge.errors import UsageError
from agegate.edge.quiet import quiet_fds

MIXED_LABEL = "int8-mixed"
RANK_IMAGES = 64  # debugger images: the two worst layers above were the same with 64 and 200 (the next two not)
# A float layer stores each weight in 4 bytes instead of 1. The first layers are tiny (864 and 288 weights in
# MobileNetV2), but on a model recovered from v2 the debugger ranked the last 1x1 convolution (409,600
# weights) second: kept float, the file grew from 2.84 to 4.04 MB. Layers above this size stay int8.
MAX_FLOAT_PARAMS = 20_000


@dataclass(frozen=True)
class LayerError:
    """One layer's int8 output error against float, from TFLite's quantization debugger."""

    tensor: str  # the op's output tensor: what a denylist names
    op: str  # CONV_2D, DEPTHWISE_CONV_2D, ...
    steps: float  # RMSE of the int8 output, in quantization steps of that output
    mse: float
    params: int = 0  # weights of the Keras layers fused into this op (what keeping it float costs, x3 bytes)

    @property
    def layer(self) -> str:
        """The Keras layer the tensor comes from: `model/block_1_expand_relu/Relu6;...` -> block_1_expand_relu."""
        first = self.tensor.split(";")[0]
        parts = first.split("/")
        return parts[1] if len(parts) > 2 else first

    def to_dict(self) -> dict:
        return {**asdict(self), "layer": self.layer, "steps": round(self.steps, 4)}


def int8_converter(keras_model, calibration: np.ndarray | None):
    """The int8 converter: TFLite's default optimisation with `calibration` (normalised inputs) as the
    representative data (None: a QAT model carries its own ranges). Not yet integer-only: a plain int8
    conversion adds TFLITE_BUILTINS_INT8 (tflite.py); a mixed one must let denylisted layers stay float."""
    from agegate.train.tfenv import import_tf

    tf, _ = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is not None:
        conv.representative_dataset = _feed(calibration)
    return conv


def _feed(images: np.ndarray):
    def representative():
        for x in images:
            yield [np.asarray(x, np.float32)[None]]

    return representative


def _debugger(tf, keras_model, calibration: np.ndarray, images: int):
    """TFLite's quantization debugger over `keras_model`: building it calibrates once on all of
    `calibration`; its statistics run on the first `images`."""
    if len(calibration) == 0:
        raise UsageError("ranking layers by int8 error needs calibration images")
    return tf.lite.experimental.QuantizationDebugger(converter=int8_converter(keras_model, calibration),
                                                    debug_dataset=_feed(calibration[:images]))


def _params(tensor: str, keras_model) -> int:
    """Weights of the Keras layers a converted op's tensor name lists ('m/Conv1_relu/Relu6;m/Conv1/Conv2D')."""
    names = {part.split("/")[1] for part in tensor.split(";") if part.count("/") >= 1}
    return sum(l.count_params() for l in keras_model.layers if l.name in names)


def _ranked(dbg, keras_model) -> list[LayerError]:
    """Run the debugger and read its per-layer statistics, worst first."""
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    out = []
    for r in csv.DictReader(buf.getvalue().splitlines()):
        mse = float(r.get("mean_squared_error") or 0)
        scale = float(r.get("scale") or 0)
        tensor = r.get("tensor_name", "")
        out.append(LayerError(tensor, r.get("op_name", ""), mse ** 0.5 / scale if scale else 0.0, mse,
                              _params(tensor, keras_model)))
    return sorted(out, key=lambda e: -e.steps)


def layer_errors(keras_model, calibration: np.ndarray, images: int = RANK_IMAGES) -> list[LayerError]:
    """Every quantized layer's int8 error, worst first (the debugger runs `images` of `calibration`)."""
    from agegate.train.tfenv import import_tf

    tf, _ = import_tf()
    with quiet_fds():
        return _ranked(_debugger(tf, keras_model, calibration, images), keras_model)


def mixed_int8(keras_model, calibration: np.ndarray, float_layers: int, images: int = RANK_IMAGES,
               max_params: int = MAX_FLOAT_PARAMS) -> tuple[bytes, list[LayerError]]:
    """(.tflite bytes, the layers kept float): int8 everywhere except the `float_layers` layers with the
    largest int8 error among those with at most `max_params` weights. Activation ranges come from all of
    `calibration`, as in a plain int8 conversion; the model is calibrated once: the debugger that ranks the layers also writes the file, with them
    denylisted (its `options` setter re-quantizes the calibrated model, it does not calibrate again)."""
    from agegate.train.tfenv import import_tf

    if float_layers < 1:
        raise UsageError(f"--float-layers must be 1 or more here, not {float_layers}")
    tf, _ = import_tf()
    with quiet_fds():
        dbg = _debugger(tf, keras_model, calibration, images)
        keep = [e for e in _ranked(dbg, keras_model) if e.params <= max_params][:float_layers]
        dbg.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[e.tensor for e in keep])
        blob = dbg.get_nondebug_quantized_model()
    return blob, keep
