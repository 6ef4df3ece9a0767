"""Loading and running a .tflite age model on the box (LiteRT, no TensorFlow).

Interpreter order: ai-edge-litert (LiteRT), then tflite-runtime, then tf.lite, so
a box with only the base install runs, and a dev machine can fall back.
"""
from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import ModelError
from .metadata import ModelMetadata, read_metadata, sha256_file
from .preprocess import PreprocessSpec, normalize, prepare_uint8

log = logging.getLogger("agegate.edge")
_RUNTIMES = (
    ("ai_edge_litert.interpreter", "litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tf.lite"),
)


def interpreter_class() -> tuple[type, str]:
    """(Interpreter class, runtime name) of the first runtime that imports."""
    errors = []
    for module, name in _RUNTIMES:
        try:
            mod = importlib.import_module(module)
            return mod.Interpreter, name
        except ImportError as e:
            errors.append(f"{module}: {e}")
    raise ModelError("no TFLite runtime found; pip install ai-edge-litert\n" + "\n".join(errors))


def runtime_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime", "tf.lite": "tensorflow"}[name]
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def validate_tflite_file(path: Path) -> None:
    """Clear errors for a missing, truncated or non-TFLite file, before anything else opens."""
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    size = path.stat().st_size
    if size < 16:
        raise ModelError(f"{path}: {size} bytes, not a TFLite model (truncated?)")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); give a .tflite from `agegate convert`")


def make_interpreter(path: Path, threads: int = 2, delegate: str = "xnnpack", input_size: int | None = None):
    """(interpreter, runtime name), tensors allocated. `input_size`: the first input resized to that square
    size (a model's `tta_sizes`: the same file run at another size)."""
    cls, name = interpreter_class()
    kwargs = {"model_path": str(path), "num_threads": int(threads)}
    if delegate == "none":
        # Without XNNPACK: the reference kernels (LiteRT's BUILTIN_WITHOUT_DEFAULT_DELEGATES).
        mod = importlib.import_module(cls.__module__)
        resolver = getattr(mod, "OpResolverType", None)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    from .quiet import quiet_fds

    try:
        with quiet_fds():  # LiteRT prints "Created TensorFlow Lite XNNPACK delegate" on every load
            interp = cls(**kwargs)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: the runtime could not load this model ({e}); is the file complete?") from e
    if input_size is not None:
        index = interp.get_input_details()[0]["index"]
        try:
            interp.resize_tensor_input(index, [1, int(input_size), int(input_size), 3])
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: the model cannot take a {input_size} px input ({e}); if its metadata lists "
                             f"that size in tta_sizes, remove it (`agegate tta`)") from e
    return interp, name


@dataclass(frozen=True)
class FaceRun:
    """One run of the model on a face as it is: the normalised input, the raw output, and the pooled
    features (None without a features output). The box runs every face once for its features
    (tracking.Look; kept in memory with the track, never stored); a face it then ages reuses this run as
    the first of its test-time views."""

    x: np.ndarray
    raw: np.ndarray
    features: np.ndarray | None
    age: float  # the point estimate of this one view (no test-time augmentation): for telling buyers apart


@dataclass(frozen=True)
class AgeEstimate:
    """One face's estimate: the point in years, and for a distribution model its probabilities per year."""

    age: float
    probs: np.ndarray | None = None


def model_label(path: Path, meta: ModelMetadata) -> str:
    """Which model a file is (fleet reports list models and versions per box; doctor compares the running box's
    with the file a restart would load): an installed bundle's name and version, or the file name, then 12 hex of
    the file's SHA-256 (two builds of one name differ). A bundle forced past a failed QA says FORCED, so the events,
    /metrics and the chain's fleet report show which boxes decide with a model QA refused."""
    b = meta.bundle
    name = f"{b.name} {b.version}{' FORCED' if b.forced else ''}" if b else Path(path).name
    return f"{name}:{sha256_file(path)[:12]}"


class AgeModel:
    """A .tflite age model with its metadata: images in, ages out (with a distribution head, each age's
    distribution too).

    Handles float or int8 input/output tensors (quantize/dequantize with the
    tensor's own scale and zero point) so callers always pass RGB uint8 images.
    """

    def __init__(self, path: str | Path, threads: int = 2, delegate: str = "xnnpack"):
        self.path = Path(path)
        validate_tflite_file(self.path)
        self.meta: ModelMetadata = read_metadata(self.path)
        self.spec: PreprocessSpec = self.meta.preprocess
        t0 = time.perf_counter()
        self.interpreter, self.runtime = make_interpreter(self.path, threads, delegate)
        self._in = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        shape = tuple(self._in["shape"])
        if shape[1:3] != (self.spec.input_size, self.spec.input_size):
            raise ModelError(f"{self.path}: input shape {shape} does not match metadata input_size {self.spec.input_size}")
        # The age output is the one as wide as the head; a second one, if any, is the pooled features.
        heads = [o for o in outputs if _width(o) == self.meta.head.outputs]
        if not heads:
            raise ModelError(f"{self.path}: {_width(outputs[0])} outputs, but its metadata describes a "
                             f"{self.meta.head.kind.value} head with {self.meta.head.outputs}; the sidecar belongs "
                             f"to another model")
        self._out = heads[0]
        rest = [o for o in outputs if o["index"] != self._out["index"]]
        self._features = rest[0] if rest else None
        # A model with tta_sizes runs the same file at each further size: an interpreter each, its input resized
        # (the tensors' indices and quantization stay those of the file).
        self._at_size = {self.spec.input_size: self.interpreter}
        for size in self.meta.tta_sizes:
            self._at_size[size], _ = make_interpreter(self.path, threads, delegate, input_size=size)
        self.init_ms = (time.perf_counter() - t0) * 1000

    @cached_property
    def label(self) -> str:
        """Which model this is, in every event row and /healthz (model_label)."""
        return model_label(self.path, self.meta)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._in["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        scale, zero = self._in["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """One normalised (S, S, 3) float input -> the raw output (head.outputs,): an age in years, or
        one logit per year of age (age_head.py). S is the input size, or one of the metadata's tta_sizes."""
        interp = self._at_size.get(int(x.shape[0]))
        if interp is None:
            raise ModelError(f"{self.path}: an input of {x.shape[0]} px; this model runs at "
                             f"{', '.join(map(str, self._at_size))} px")
        interp.set_tensor(self._in["index"], self._quantize(x[None]))
        interp.invoke()
        return self._read(self._out, interp)

    def _read(self, detail: dict, interp=None) -> np.ndarray:
        y = (interp or self.interpreter).get_tensor(detail["index"]).reshape(-1)
        if detail["dtype"] != np.float32:
            scale, zero = detail["quantization"]
            y = (y.astype(np.float64) - zero) * scale
        return y.astype(np.float64)

    @property
    def has_features(self) -> bool:
        """Whether the file exposes its pooled features (convert/feature_output.py)."""
        return self._features is not None

    def _read_features(self) -> np.ndarray | None:
        """The features of the last invoke: mean removed, unit norm (compared by cosine)."""
        if self._features is None:
            return None
        f = self._read(self._features).astype(np.float32)
        f -= f.mean()
        return f / (float(np.linalg.norm(f)) + 1e-6)

    def run_face(self, face_rgb: np.ndarray) -> FaceRun:
        """A face crop (RGB uint8, any size) -> one run of the model on it (no test-time augmentation)."""
        x = normalize(prepare_uint8(face_rgb, self.spec), self.spec)
        raw = self.run_tensor(x)
        return FaceRun(x, raw, self._read_features(), float(self.meta.head.point(raw)[0]))

    def features_face(self, face_rgb: np.ndarray) -> np.ndarray | None:
        """A face crop -> how the model sees it: the pooled features of one run (no test-time augmentation),
        unit norm, or None when the file has no features output (then nothing runs)."""
        return self.run_face(face_rgb).features if self._features is not None else None

    def raw_tensor(self, x: np.ndarray) -> np.ndarray:
        """One normalised input -> raw output with the model's test-time augmentation (ModelMetadata.with_tta)."""
        return self.meta.with_tta(self.run_tensor, x)

    def raw(self, xs: np.ndarray) -> np.ndarray:
        """A batch of normalised inputs -> (N, head.outputs) raw outputs with TTA (the Predictor protocol
        of convert/predictor.py; the interpreter takes one image at a time)."""
        return np.stack([self.raw_tensor(x) for x in xs]) if len(xs) else np.zeros((0, self.meta.head.outputs))

    def estimate_tensor(self, x: np.ndarray) -> AgeEstimate:
        return self._estimate(self.raw_tensor(x))

    def estimate_run(self, run: FaceRun) -> AgeEstimate:
        """The age of a face already run once (run_face): the same estimate as estimate_face, one run fewer."""
        return self._estimate(self.meta.with_tta(self.run_tensor, run.x, first=run.raw))

    def _estimate(self, raw: np.ndarray) -> AgeEstimate:
        head = self.meta.head
        probs = head.probabilities(raw)[0] if head.is_distribution else None
        return AgeEstimate(float(head.point(raw)[0]), probs)

    def estimate_face(self, face_rgb: np.ndarray) -> AgeEstimate:
        """A face crop (RGB uint8, any size) -> age, and the age distribution when the model has one."""
        return self.estimate_tensor(normalize(prepare_uint8(face_rgb, self.spec), self.spec))

    def predict_face(self, face_rgb: np.ndarray) -> float:
        """A face crop (RGB uint8, any size) -> age in years (a distribution's mean)."""
        return self.estimate_face(face_rgb).age


def _width(detail: dict) -> int:
    return int(np.prod(detail["shape"][1:]))
