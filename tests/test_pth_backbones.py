"""ImageNet starting points read from PyTorch .pth files (train/torch_weights.py, train/pth_backbones.py).

The converted networks must reproduce their source models: with the source's own ImageNet classifier on
top, each gives the answer the PyTorch model is known for on a real photo (Grace Hopper, shipped with
matplotlib: 'military uniform', ImageNet class 652). A wrong transpose, padding or BatchNorm epsilon does
not survive that. PyTorch itself is not installed here (its PyPI wheels bring gigabytes of CUDA
libraries), so the reference is that known answer, not a side-by-side run.
"""
import io
import json
import pickle
import sys
import types
import zipfile

import cv2
import matplotlib.cbook as cbook
import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.errors import UsageError
from agegate.edge.preprocess import PreprocessSpec, preprocess
from agegate.train.backbones import BACKBONES, build_model
from agegate.train.torch_weights import load_state_dict

MILITARY_UNIFORM = 652


def _imagenet_top5(backbone: str) -> list[int]:
    from agegate.train.pth_backbones import load_pth_backbone
    from agegate.train.tfenv import import_tf

    _, keras = import_tf()
    spec = BACKBONES[backbone]
    model, _ = build_model(backbone, 224, weights="none")  # loaded once, below, to keep the classifier
    loaded = load_pth_backbone(model, spec.pretrained.locate(), keras)
    w, b = loaded.classifier
    features = keras.Model(model.input, model.get_layer("head_dropout").input)
    photo = cv2.cvtColor(cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.COLOR_BGR2RGB)
    x = preprocess(photo, PreprocessSpec(input_size=224, normalization=spec.normalization))[None]
    logits = features.predict(x, verbose=0)[0] @ w.T + b
    return list(np.argsort(-logits)[:5])


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["mobilenet_v2_torch", "efficientnet_lite0"])
def test_converted_backbone_gives_the_source_models_imagenet_answer(backbone):
    top5 = _imagenet_top5(backbone)
    assert top5[0] == MILITARY_UNIFORM, top5


@pytest.mark.slow
def test_wrong_pth_for_a_backbone_is_refused_with_counts():
    from agegate.train.backbones import EFFICIENTNET_LITE0

    with pytest.raises(UsageError, match="modules in the file"):
        build_model("mobilenet_v2_torch", 64, weights=str(EFFICIENTNET_LITE0.locate()))
    with pytest.raises(UsageError, match="seed only"):
        build_model("mobilenet_v2", 64, weights=str(EFFICIENTNET_LITE0.locate()))
    with pytest.raises(UsageError, match="--weights pretrained"):
        build_model("efficientnet_lite0", 64, weights="imagenet")


@pytest.mark.slow
def test_train_from_pretrained_lite0_records_the_start(small_utk, tmp_path):
    out = tmp_path / "lite0"
    res = CliRunner().invoke(cli, ["train", "--data", str(small_utk), "--out", str(out), "--backbone",
                                   "efficientnet_lite0", "--weights", "pretrained", "--input-size", "64",
                                   "--epochs", "1", "--limit", "64", "--batch-size", "32"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    meta = json.loads((out / "model.json").read_text())
    assert meta["backbone"] == "efficientnet_lite0" and meta["preprocess"]["normalization"] == "lite"


def test_legacy_pth_reads_without_torch(monkeypatch):
    from agegate.train.backbones import EFFICIENTNET_LITE0

    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now raises ImportError
    state = load_state_dict(EFFICIENTNET_LITE0.locate())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.running_var"].dtype == np.float32 and (state["_bn0.running_var"] >= 0).all()


class _FakeStorage:
    """Pickles like a torch storage: as a persistent id ('storage', FloatStorage, key, 'cpu', numel)."""

    def __init__(self, key, data):
        self.key, self.data = key, data


def _write_zip_pth(path, tensors: dict[str, np.ndarray], monkeypatch) -> None:
    """A state dict in PyTorch's zip layout (>= 1.6), written without PyTorch: archive/data.pkl whose tensors
    are torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, ...) over archive/data/<key>."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    float_storage = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage, torch._utils = float_storage, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, storage, arr):
            self.storage, self.arr = storage, arr

        def __reduce__(self):
            stride = tuple(s // self.arr.itemsize for s in self.arr.strides)
            return _rebuild_tensor_v2, (self.storage, 0, self.arr.shape, stride, False, {})

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeStorage):
                return ("storage", float_storage, obj.key, "cpu", obj.data.size)
            return None

    storages = {name: _FakeStorage(str(i), a) for i, (name, a) in enumerate(tensors.items())}
    state = {name: Tensor(storages[name], a) for name, a in tensors.items()}
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for st in storages.values():
            z.writestr(f"archive/data/{st.key}", st.data.astype(np.float32).tobytes())


def test_zip_pth_reads_tensors_and_refuses_code(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    tensors = {"conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
               "bn.running_var": rng.uniform(1, 2, size=4).astype(np.float32)}
    path = tmp_path / "m.pth"
    _write_zip_pth(path, tensors, monkeypatch)
    monkeypatch.setitem(sys.modules, "torch", None)
    got = load_state_dict(path)
    assert list(got) == list(tensors)
    for k in tensors:
        np.testing.assert_array_equal(got[k], tensors[k])

    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(UsageError, match="os.system"):
        load_state_dict(evil)
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(UsageError, match="junk.pth"):
        load_state_dict(tmp_path / "junk.pth")
