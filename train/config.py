"""TrainConfig: every knob of `agegate train`, saved as config.json in the run folder."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from agegate.edge.errors import UsageError
from agegate.edge.preprocess import FACE_CROPS

from .augment import AUGMENTS
from .sources import AGE_PRIORS


@dataclass
class TrainConfig:
    data: list[str]  # one or more data sets (train --data A --data B)
    out: str
    data_weight: list[float] = field(default_factory=list)  # per source, same order; empty: all 1
    age_prior: str = "none"  # none | balanced: weigh images by inverse age-bin frequency
    crop: str = "none"  # none: images as they are (chips) | box: the box's detector and crop first
    format: str = "auto"
    split_file: str | None = None
    backbone: str = "resnet50"
    weights: str = "imagenet"
    input_size: int | None = None  # None: the backbone's default
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    loss: str = "huber"
    freeze_epochs: int = 0
    augment: str = "light"
    seed: int = 0
    precision: str = "float32"
    distribute: str = "none"
    patience: int = 5
    keep: str = "best"  # which epoch model.keras holds: best val MAE, or the last (cosine schedules end low)
    dropout: float = 0.2
    bn_momentum: float = 0.9
    minor_weight: float = 1.0  # loss weight of training images under 18 (Challenge 25: fewer minors pass)
    minor_overshoot_weight: float = 1.0  # extra factor on a minor's loss when the estimate is above the true age
    bn_recalibrate: int = 20  # precise-BN batches after each epoch (0: off)
    strict: bool = False
    cache_dir: str | None = None
    limit: int | None = None  # use at most N train (and N//4 val) images: smoke tests, quick looks
    val_split: str = "val"
    deterministic: bool = False  # TF op determinism: bitwise-repeatable runs and resumes (slower on GPU)

    def __post_init__(self) -> None:
        if isinstance(self.data, str):  # one source given as a plain path
            self.data = [self.data]

    def validate(self) -> None:
        if self.loss not in ("mae", "huber"):
            raise UsageError(f"--loss must be mae or huber, not {self.loss!r}")
        if self.augment not in AUGMENTS:
            raise UsageError(f"--augment must be one of {', '.join(AUGMENTS)}, not {self.augment!r}")
        if self.crop not in FACE_CROPS:
            raise UsageError(f"--crop must be one of {', '.join(FACE_CROPS)}, not {self.crop!r}")
        if self.age_prior not in AGE_PRIORS:
            raise UsageError(f"--age-prior must be one of {', '.join(AGE_PRIORS)}, not {self.age_prior!r}")
        if self.precision not in ("float32", "mixed_float16"):
            raise UsageError(f"--precision must be float32 or mixed_float16, not {self.precision!r}")
        if self.distribute not in ("none", "mirrored", "multiworker"):
            raise UsageError(f"--distribute must be none, mirrored or multiworker, not {self.distribute!r}")
        if self.keep not in ("best", "last"):
            raise UsageError(f"--keep must be best or last, not {self.keep!r}")
        if self.minor_weight <= 0:
            raise UsageError("--minor-weight must be positive")
        if self.minor_overshoot_weight < 1:
            raise UsageError("--minor-overshoot-weight must be 1 (off) or more")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if not 0 <= self.freeze_epochs <= self.epochs:
            raise UsageError("--freeze-epochs must be between 0 and --epochs")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        d = json.loads(path.read_text())
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
