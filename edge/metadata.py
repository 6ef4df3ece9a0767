"""Model metadata: the JSON that travels with every exported or converted model.

One way, documented: `model.json` sits next to the model file (`model.keras` in a
training run folder, `NAME.json` next to `NAME.tflite`). `sidecar_path()` says
where; the box, the QA gate and the bundle all read it through `read_metadata()`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .age_head import AgeHead
from .challenge25 import OperatingPoint
from .errors import ModelError
from .preprocess import INPUT_SIZES, PreprocessSpec, mirror, resize_input

#: 2 added `tta_sizes`. A file that uses nothing of version 2 is still written as 1, so boxes on an older
#: agegate keep reading it; one that runs at several sizes is written as 2, which they refuse ("upgrade
#: agegate") rather than run it at one size against an operating point chosen for several.
FORMAT_VERSION = 2
TTA_MODES = ("none", "mirror")


@dataclass(frozen=True)
class TtaViews:
    """How each face is run: the metadata's `tta` and `tta_sizes` as one value, to compare two models (QA
    measures a float parent with its quantized child's views) or to impose one model's views on another."""

    tta: str = "none"
    sizes: tuple[int, ...] = ()

    def __str__(self) -> str:
        """'mirror', 'mirror, also at 128 px': for messages and reports."""
        return self.tta + (f", also at {' and '.join(map(str, self.sizes))} px" if self.sizes else "")


@dataclass(frozen=True)
class BundleInfo:
    """What `bundle build` records in a bundled model's metadata: the release and its QA verdict."""

    name: str
    version: str
    qa_passed: bool
    forced: bool = False
    qa_mae: float | None = None
    qa_split_n: int | None = None
    latency_budget_ms: float | None = None  # p50 inference per face the install smoke test allows


@dataclass
class ModelMetadata:
    backbone: str
    input_size: int
    preprocess: PreprocessSpec
    age_range: tuple[float, float] = (0.0, 100.0)
    quantization: str = "none"  # none (Keras float) | float32 | float16 | dynamic | int8 | int8-mixed | int8-qat
    tta: str = "none"  # none | mirror: average the face and its mirror image (two runs per prediction)
    tta_sizes: tuple[int, ...] = ()  # further input sizes the same file also runs at (with_tta); format 2
    head: AgeHead = field(default_factory=AgeHead)  # what the output means (age_head.py)
    operating_point: OperatingPoint | None = None  # distribution models: when to ask for ID (challenge25.py)
    bundle: BundleInfo | None = None  # set by `bundle build`
    source_sha256: str = ""
    data_fingerprint: str = ""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> {mae, n}
    agegate_version: str = __version__
    git_commit: str = ""
    created: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # training config, split sizes, QA, ...

    def __post_init__(self) -> None:
        # input_size is kept at the top level for readers of older files; the spec is the one that counts
        if int(self.input_size) != int(self.preprocess.input_size):
            raise ModelError(f"model metadata says input_size {self.input_size} but preprocess.input_size "
                             f"{self.preprocess.input_size}; re-export the model (`agegate convert`)")
        self.tta_sizes = tuple(int(s) for s in self.tta_sizes)
        lo, hi = INPUT_SIZES
        if len(set(self.tta_sizes)) != len(self.tta_sizes) or int(self.input_size) in self.tta_sizes \
                or not all(lo <= s <= hi for s in self.tta_sizes):
            raise ModelError(f"tta_sizes {list(self.tta_sizes)}: each a size from {lo} to {hi} px, once, other than "
                             f"the model's input size {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["age_range"] = list(self.age_range)
        d["head"] = self.head.to_dict()
        d["operating_point"] = self.operating_point.to_dict() if self.operating_point else None
        d["bundle"] = asdict(self.bundle) if self.bundle else None
        d["tta_sizes"] = list(self.tta_sizes)
        d["format_version"] = FORMAT_VERSION if self.tta_sizes else 1  # see FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelMetadata":
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelError(
                f"model metadata format_version {d.get('format_version')} is newer than this agegate understands "
                f"({FORMAT_VERSION}); upgrade agegate"
            )
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["preprocess"] = PreprocessSpec.from_dict(d["preprocess"])
        kw["age_range"] = tuple(d.get("age_range", (0.0, 100.0)))
        kw["tta_sizes"] = tuple(d.get("tta_sizes", ()))
        kw["head"] = AgeHead.from_dict(d.get("head"))
        kw["operating_point"] = OperatingPoint.from_dict(d.get("operating_point"))
        bundle = d.get("bundle") or d.get("extra", {}).get("bundle")  # bundles before BundleInfo kept it in extra
        kw["bundle"] = BundleInfo(**{k: v for k, v in bundle.items() if k in BundleInfo.__dataclass_fields__}) \
            if bundle else None
        if kw.get("tta", "none") not in TTA_MODES:
            raise ModelError(f"unknown tta {kw['tta']!r} in model metadata (known: {', '.join(TTA_MODES)}); "
                             f"upgrade agegate")
        return cls(**kw)

    @property
    def views(self) -> TtaViews:
        return TtaViews(self.tta, self.tta_sizes)

    def with_views(self, views: TtaViews) -> "ModelMetadata":
        """This model, run with other test-time views (a run folder evaluated as its converted child)."""
        return replace(self, tta=views.tta, tta_sizes=tuple(views.sizes))

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """Every size a face is run at: the model's input size, then `tta_sizes`."""
        return (int(self.input_size), *self.tta_sizes)

    @property
    def runs_per_prediction(self) -> int:
        """Model invokes per face: one per input size, twice that with mirror test-time augmentation."""
        return len(self.input_sizes) * (2 if self.tta == "mirror" else 1)

    def with_tta(self, run: Callable[[Any], Any], x: Any, first: Any = None) -> Any:
        """`run(x)` with this model's test-time augmentation: the one implementation that the box
        (one face) and the Keras evaluation (a batch) share. `mirror` averages the face and its
        mirror image: age does not depend on left-right orientation, and the average halves part of
        the model's noise (on UTKFace val it lowered the int8-vs-float decision flips by a third).
        `tta_sizes` also run the input resized to each size (`run` takes any of `input_sizes`) and average
        the raw outputs of every size alike: v2.3's own weights at 112 and 128 px together erred less and
        passed 1 % of val minors per image asking 18.3 % of adults against 21.8 % at 112 alone, though not
        fewer at its per-buyer point (MODEL_HISTORY.md, "One file at two input sizes"); resizing the input, not
        the face crop, measured the same (val MAE 5.312 against 5.311).
        `first` is `run(x)` when the caller already has it (the box ran the face once for its features)."""
        views = []
        for i, size in enumerate(self.input_sizes):
            v = x if i == 0 else resize_input(x, size)
            plain = first if i == 0 and first is not None else run(v)
            views.append(0.5 * (plain + run(mirror(v))) if self.tta == "mirror" else plain)
        return views[0] if len(views) == 1 else sum(views) / len(views)


#: The files a model comes as (each with its .json sidecar beside it); a run folder holds model.keras.
MODEL_SUFFIXES = (".tflite", ".keras")


def sidecar_path(model_path: str | Path) -> Path:
    """model.tflite -> model.json; a run folder -> folder/model.json."""
    p = Path(model_path)
    if p.is_dir():
        return p / "model.json"
    return p.with_suffix(".json")


def read_metadata(model_path: str | Path) -> ModelMetadata:
    side = sidecar_path(model_path)
    if not side.exists():
        if Path(model_path).is_file() and Path(model_path).suffix not in MODEL_SUFFIXES:
            raise ModelError(f"{model_path}: not an agegate model; give a .tflite from `agegate convert`, a run "
                             f"folder from `agegate train` or its model.keras")
        raise ModelError(
            f"{side}: model metadata not found. Every agegate model travels with a JSON sidecar "
            f"(written by `agegate train` and `agegate convert`); copy it next to {Path(model_path).name}."
        )
    try:
        d = json.loads(side.read_text())
        if not isinstance(d, dict):
            raise TypeError(f"a JSON {type(d).__name__}, not an object")
        return ModelMetadata.from_dict(d)
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
        what = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise ModelError(f"{side}: invalid model metadata ({what}); copy the sidecar the model was converted "
                         f"with next to {Path(model_path).name}") from e


def write_metadata(model_path: str | Path, meta: ModelMetadata) -> Path:
    side = sidecar_path(model_path)
    if not meta.created:
        meta.created = now_iso()
    if not meta.git_commit:
        meta.git_commit = git_commit()
    tmp = side.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp.replace(side)
    return side


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def git_commit() -> str:
    """The commit of the agegate checkout that made a model ('' outside a git checkout)."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""
