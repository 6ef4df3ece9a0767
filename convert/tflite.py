"""`agegate convert`: a trained run folder -> .tflite + metadata sidecar.

Modes: float32, float16 (weights), dynamic (int8 weights, float activations),
int8 (full-integer post-training quantization, calibrated on images drawn from a
split through the box's own preprocessing), and int8 after QAT (see qat.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.errors import ModelError, UsageError
from agegate.edge.metadata import ModelMetadata, read_metadata, sha256_file, sidecar_path, write_metadata
from agegate.edge.preprocess import PreprocessSpec
from agegate.edge.quiet import quiet_fds

from .feature_output import with_feature_output
from .mixed_int8 import MIXED_LABEL, LayerError, int8_converter, mixed_int8

QUANT_MODES = ("float32", "float16", "dynamic", "int8")


@dataclass
class ConvertResult:
    path: Path
    mode: str
    size_bytes: int
    ops: list[str]
    input_type: str
    output_type: str
    float_layers: list[LayerError] = field(default_factory=list)  # mixed int8: the layers kept float32

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}

    def summary(self) -> str:
        lines = [f"{self.path}: {self.mode}, {self.size_bytes / 1e6:.2f} MB, input {self.input_type}, "
                 f"output {self.output_type}, {len(self.ops)} op types: {', '.join(self.ops)}"]
        lines += [f"kept float: {e.layer} ({e.op}; int8 error {e.steps:.2f} steps)" for e in self.float_layers]
        return "\n".join(lines)


def load_keras_model(model_dir: str | Path):
    """(tf_keras model, metadata) from a run folder or a model.keras path."""
    from agegate.train.tfenv import import_tf

    p = Path(model_dir)
    path = p / MODEL_FILE if p.is_dir() else p
    if not path.exists():
        raise ModelError(f"{path}: no trained model here; `agegate train --out {p}` writes one")
    meta = read_metadata(path)
    _, keras = import_tf()
    with quiet_fds():
        model = keras.models.load_model(str(path), compile=False)
    return as_float32(model, keras), meta


def at_input_size(model, meta: ModelMetadata, size: int):
    """The same Keras model (the same weight arrays) built afresh for `size` x `size` inputs, for the float
    parent of a model with `tta_sizes` (predictor.KerasPredictor): a convolutional backbone with global pooling
    has no weight that depends on the input size. Built afresh, not from the model's config, because Keras
    fixes each stride-2 convolution's zero padding for the size a model was built at (MobileNetV2 pads a 7 px
    map on both sides, an 8 px one on one): rebuilt from the config, the view at 128 px of a 112 px model differed
    from its .tflite's by up to 0.96 in a logit; built afresh it pads as the .tflite does at that size."""
    from agegate.train.backbones import build_model

    resized, _ = build_model(meta.backbone, int(size), "none", head=meta.head)
    resized.set_weights(model.get_weights())
    return resized


def _mixed(layer_config: dict) -> bool:
    d = layer_config.get("config", {}).get("dtype")
    return isinstance(d, dict) and d.get("config", {}).get("name", "").startswith("mixed_")


def as_float32(model, keras):
    """The same model computing in float32: a run trained with `--precision mixed_float16` (the GPU recipe)
    saves its layers with that policy, and the TFLite converter then meets float16 Conv2D and BatchNorm
    ops it cannot translate ("neither a custom op nor a flex op"). The weights are float32 either way
    (mixed precision keeps float32 variables), so the layers are rebuilt with a float32 policy and take
    the same weights; a float32 model comes back as it is."""
    config = model.get_config()
    layers = []
    stack = [config]
    while stack:  # nested models (e.g. the torch-conventions wrapper) carry their own layer lists
        for layer in stack.pop().get("layers", []):
            layers.append(layer)
            if "layers" in layer.get("config", {}):
                stack.append(layer["config"])
    mixed = [l for l in layers if _mixed(l)]
    if not mixed:
        return model
    for l in mixed:
        l["config"]["dtype"] = "float32"
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def calibration_images(records, spec: PreprocessSpec, size: int, seed: int = 0) -> np.ndarray:
    """Up to `size` normalised inputs drawn evenly at random from `records`, skipping unreadable files
    (and, for a model trained on box crops, images without a face: calibration sees the box's crops)."""
    from .evaluate import ModelInputs

    inputs = ModelInputs(spec)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(records))
    out = []
    for i in picks:
        if len(out) >= size:
            break
        x = inputs(records[i]).x
        if x is not None:
            out.append(x)
    if not out:
        raise UsageError("no readable calibration images")
    return np.stack(out).astype(np.float32)


def convert_keras(model, meta: ModelMetadata, mode: str, out: Path, io: str = "float32",
                  calibration: np.ndarray | None = None, source_path: Path | None = None,
                  qat: bool = False, float_layers: int = 0) -> ConvertResult:
    """`float_layers` > 0 (int8 only): keep that many layers, those int8 hurts most, in float32
    (mixed_int8.py)."""
    from agegate.train.tfenv import import_tf

    tf, _ = import_tf()
    if mode not in QUANT_MODES:
        raise UsageError(f"--quant must be one of {', '.join(QUANT_MODES)}")
    if io == "int8" and mode != "int8":
        raise UsageError("--io int8 needs --quant int8")
    if float_layers:
        if mode != "int8" or qat:
            raise UsageError("--float-layers applies to a post-training int8 conversion (--quant int8, no --qat)")
        if io == "int8":
            raise UsageError("--float-layers keeps float ops inside the model; use --io float32 with it")
    if mode == "int8" and calibration is None and not qat:
        raise UsageError("--quant int8 needs calibration images (--calibration DATA)")
    kept_float = []
    if float_layers:
        blob, kept_float = mixed_int8(model, calibration, float_layers)
    else:
        with quiet_fds():
            blob = _converter(tf, model, mode, calibration, io).convert()
    blob = with_feature_output(blob)  # the box tells buyers apart with them (feature_output.py)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tflite.tmp")
    tmp.write_bytes(blob)
    tmp.replace(out)
    label = "int8-qat" if qat else MIXED_LABEL if kept_float else mode
    mixed = {"float_layers": [e.to_dict() for e in kept_float]} if kept_float else {}
    new_meta = dataclasses.replace(
        meta, quantization=label,
        source_sha256=sha256_file(source_path) if source_path and source_path.exists() else meta.source_sha256,
        created="", git_commit="",
        extra={**{k: v for k, v in meta.extra.items() if k != "float_layers"}, "io": io,
               "calibration_size": 0 if calibration is None else int(len(calibration)), **mixed},
    )
    write_metadata(out, new_meta)
    return dataclasses.replace(describe(out, label), float_layers=kept_float)


def _converter(tf, model, mode: str, calibration: np.ndarray | None, io: str):
    """The TFLite converter of one mode; int8 is integer-only (mixed int8 is mixed_int8.py's)."""
    if mode == "int8":
        converter = int8_converter(model, calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter


def describe(path: Path, mode: str | None = None) -> ConvertResult:
    from agegate.edge.runtime import make_interpreter

    interp, _ = make_interpreter(path, threads=1, delegate="none")  # ops before XNNPACK fuses them
    ops = sorted({d["op_name"] for d in interp._get_ops_details()})  # noqa: SLF001 - LiteRT's only op listing
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    if mode is None:
        mode = read_metadata(path).quantization
    return ConvertResult(path, mode, path.stat().st_size, ops, np.dtype(i["dtype"]).name, np.dtype(o["dtype"]).name)


def refuse_over_calibrated(out: Path) -> None:
    """A converted file is rebuilt at will, but one `agegate calibrate` has given an operating point carries work
    (a replay of every val minor, tens of minutes) that writing over it (`convert`, `tta`) would silently drop: its
    sidecar came back without a point, and a box given it decides by the age line."""
    if not (out.exists() and sidecar_path(out).exists()):
        return
    try:
        point = read_metadata(out).operating_point
    except ModelError:  # a sidecar that does not read is no calibration to keep
        return
    if point is not None:
        where = f", chosen on {point.chosen_on}" if point.chosen_on else ""
        raise UsageError(f"{out} is calibrated (operating point {point.max_risk:g}{where}): writing over it "
                         f"loses that. Choose another --out, or pass --force")
