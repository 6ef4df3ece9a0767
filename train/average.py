"""`agegate average`: one model whose weights are the weighted mean of runs fine-tuned from one start.

Why: fine-tuning the shipped v2 model again made it overfit (train MAE 5.41 -> 4.78 in four epochs at a peak
learning rate of 5e-5, float val MAE 5.60-5.80 against the start's ~5.55), yet the mean of the start's and the
fine-tuned weights was better than either (float val MAE 5.19 / 5.54 on UTKFace / AAF against 5.32 / 5.70
and 5.30 / 5.59): networks fine-tuned from one start lie in one basin, and their average sits nearer its
centre (Wortsman et al., "Model soups", 2022, and "Robust fine-tuning of zero-shot models" (WiSE-FT), 2022).
One model comes out, so the box pays nothing for it, unlike an ensemble.

Averaging runs that did not share a start gives noise, not a better model: every run must have the same
architecture (checked) and, where each run's `train --weights` can be followed back to its first start, some run or
start common to all (checked: `lineage`); `model.json` lists each source with its SHA-256, weight and input size.
A fine-tune at a larger input from a smaller start (v2.3's 112 px soup fine-tuned at 128 px) shares the start:
the backbone's weights do not depend on the input size (convolutions, then global pooling), so with
`across_sizes` such runs average too, and the mean runs at the first run's size. Without it a size mismatch is
refused, as it usually means two different models.
BatchNorm moving statistics are averaged like the rest (measured better on val than re-measuring them).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.errors import UsageError
from agegate.edge.metadata import ModelMetadata, now_iso, read_metadata, sha256_file, sidecar_path, write_metadata


def mix_weights(weights: list[float] | None, n: int) -> list[float]:
    """The mixing weights, normalised to sum to 1 (uniform when none are given)."""
    if not weights:
        return [1.0 / n] * n
    if len(weights) != n:
        raise UsageError(f"--weight given {len(weights)} times for {n} runs; give one per run or none")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageError(f"--weight values must be >= 0 and not all 0, not {weights}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def average_arrays(per_model: list[list[np.ndarray]], mix: list[float]) -> list[np.ndarray]:
    """Element-wise weighted mean of several models' weight lists (same order and shapes)."""
    first = per_model[0]
    for k, ws in enumerate(per_model[1:], start=2):
        if [w.shape for w in ws] != [w.shape for w in first]:
            raise UsageError(f"run {k} has different weight shapes from run 1: not the same architecture")
    return [sum(m * ws[i].astype(np.float64) for m, ws in zip(mix, per_model)).astype(first[i].dtype)
            for i in range(len(first))]


def _check_same_model(metas: list[ModelMetadata], runs: list[Path], across_sizes: bool = False) -> None:
    ref = metas[0]
    for run, m in zip(runs[1:], metas[1:]):
        same_model = (m.backbone, m.head.kind, m.head.n_bins) == (ref.backbone, ref.head.kind, ref.head.n_bins)
        same_size = m.preprocess.input_size == ref.preprocess.input_size
        if not (same_model and (same_size or across_sizes)):
            raise UsageError(f"{run}: {m.backbone} {m.preprocess.input_size} px, {m.head.kind.value} head; "
                             f"{runs[0]} is {ref.backbone} {ref.preprocess.input_size} px, {ref.head.kind.value}: "
                             f"only runs of one model (fine-tuned from one start) can be averaged"
                             + (" (a fine-tune at another input size from the same start: --across-sizes)"
                                if same_model else ""))
        if replace(m.preprocess, input_size=ref.preprocess.input_size) != ref.preprocess:
            raise UsageError(f"{run}: its preprocessing differs from {runs[0]}'s ({m.preprocess} vs "
                             f"{ref.preprocess}); the average would see images neither run was trained on")


def lineage(run: Path, meta: ModelMetadata, depth: int = 0) -> list[str] | None:
    """What a trained run descends from, itself first: its folder and, through `train --weights`, each start before
    it down to the first (`random weights, seed 0`, `imagenet weights`, a weights file, or a recovered or averaged
    run's folder). None where the line cannot be followed (the run itself recovered or averaged, a start file moved
    or gone): then nothing is claimed about it."""
    cfg = meta.extra.get("train_config")
    if not cfg or "recovered_from" in meta.extra or "averaged_from" in meta.extra or depth > 50:
        return None
    here = [f"run {run.resolve()}"]
    start = str(cfg.get("weights", "none"))
    if start == "none":
        return here + [f"random weights, seed {cfg.get('seed')}"]
    if start in ("imagenet", "pretrained"):
        return here + [f"{start} weights"]
    path = Path(start)
    folder = path.parent if path.name == MODEL_FILE else path
    if (folder / MODEL_FILE).is_file() and sidecar_path(folder / MODEL_FILE).is_file():
        before = lineage(folder, read_metadata(folder / MODEL_FILE), depth + 1)
        return here + (before if before is not None else [f"run {folder.resolve()}"])
    return here + [f"file {path.resolve()}"] if path.is_file() else None


def _check_one_start(runs: list[Path], metas: list[ModelMetadata]) -> None:
    """Refuse runs that certainly share no start (each one's line known, and no run or start common to all): their
    mean is noise. Two runs trained from random weights with other seeds once averaged without a word."""
    lines = [lineage(r, m) for r, m in zip(runs, metas)]
    if any(line is None for line in lines) or set.intersection(*(set(line) for line in lines)):
        return
    raise UsageError("these runs share no start, so their mean is noise, not a soup: "
                     + "; ".join(f"{r} from {line[-1]}" for r, line in zip(runs, lines))
                     + ". Average fine-tunes of one start (train --weights START/model.keras), with the start itself.")


def average_runs(runs: list[Path], out: Path, weights: list[float] | None = None,
                 across_sizes: bool = False) -> ModelMetadata:
    """Write run folder `out`: the weighted mean of `runs` (run folders). Metadata: the first run's
    preprocessing (its input size too), head and test-time augmentation, with `averaged_from` listing the
    sources. `across_sizes`: runs trained at other input sizes may take part (module docstring)."""
    from agegate.convert.tflite import load_keras_model

    from .checkpoints import atomic_save, check_new_run_folder

    if len(runs) < 2:
        raise UsageError("give at least two runs to average")
    check_new_run_folder(out, "average")
    mix = mix_weights(weights, len(runs))
    loaded = [load_keras_model(r) for r in runs]
    metas = [m for _, m in loaded]
    _check_same_model(metas, runs, across_sizes)
    _check_one_start(runs, metas)
    model = loaded[0][0]
    model.set_weights(average_arrays([k.get_weights() for k, _ in loaded], mix))
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(model, out / MODEL_FILE)
    sources = [{"run": str(r), "sha256": sha256_file(r / MODEL_FILE if r.is_dir() else r), "weight": round(w, 6),
                "input_size": m.preprocess.input_size} for r, w, m in zip(runs, mix, metas)]
    meta = replace(metas[0], quantization="none", bundle=None, operating_point=None, metrics={}, created=now_iso(),
                   source_sha256=sha256_file(out / MODEL_FILE), git_commit="",
                   extra={k: v for k, v in metas[0].extra.items() if k not in ("recovered_from", "float_layers")}
                   | {"averaged_from": sources})
    write_metadata(out / MODEL_FILE, meta)
    return meta

