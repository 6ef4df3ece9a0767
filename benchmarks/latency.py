"""Model latency: LiteRT init time, per-invoke latency percentiles, throughput, memory.

Configurations (model x threads) run round robin, one invoke each per round, so a
noisy neighbour or a frequency change hits every configuration alike; the first
model is the baseline of the `ratio` column (for example int8 vs float32 speed-up).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agegate.edge.errors import UsageError
from agegate.edge.runtime import make_interpreter, runtime_version, validate_tflite_file


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


@dataclass
class ModelRun:
    model: str
    threads: int
    size_mb: float
    input_type: str
    output_type: str
    quantization: str
    init_ms: float
    rss_added_mb: float
    invokes_per_face: int = 1  # metadata runs_per_prediction: 2 with mirror, 4 with mirror at two sizes
    samples_ms: list[float] = field(default_factory=list, repr=False)
    face_samples_ms: list[float] = field(default_factory=list, repr=False)  # every view of one face, timed whole

    def stats(self) -> dict:
        s = np.array(self.samples_ms)
        return {"p50_ms": round(float(np.percentile(s, 50)), 3), "p90_ms": round(float(np.percentile(s, 90)), 3),
                "p99_ms": round(float(np.percentile(s, 99)), 3), "mean_ms": round(float(s.mean()), 3),
                "std_ms": round(float(s.std()), 3), "throughput_per_s": round(float(1000 / s.mean()), 1),
                "runs": int(len(s)),
                "p50_per_face_ms": round(float(np.percentile(self.face_samples_ms, 50)), 3)
                if self.face_samples_ms else None}


def _inputs(interp, source: str, n: int = 16) -> list[np.ndarray]:
    d = interp.get_input_details()[0]
    shape, dtype = tuple(d["shape"]), d["dtype"]
    rng = np.random.default_rng(0)
    if source == "random":
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return [rng.integers(info.min, info.max + 1, shape, dtype=dtype) for _ in range(n)]
        return [rng.uniform(-1, 1, shape).astype(dtype) for _ in range(n)]
    raise UsageError(f"unknown --input {source!r}")


def _real_inputs(model_path: Path, interp, folder: Path, n: int = 16) -> list[np.ndarray]:
    from agegate.edge.contracts import IMAGE_EXTS
    from agegate.edge.metadata import read_metadata
    from agegate.edge.preprocess import decode_image, preprocess

    spec = read_metadata(model_path).preprocess
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)[:n]
    if not files:
        raise UsageError(f"--input real:{folder}: no images there")
    d = interp.get_input_details()[0]
    out = []
    for f in files:
        x = preprocess(decode_image(f), spec)[None]
        if d["dtype"] != np.float32:
            scale, zero = d["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(d["dtype"])
        out.append(x)
    return out


def _face_views(path: Path, meta, interp, threads: int, delegate: str):
    """One face through every view of the model's test-time augmentation (`ModelMetadata.with_tta`, as the box):
    raw invokes, on `interp` at the model's size and on an interpreter of the file per further size, so the
    figure is the model's cost per face, comparable with one invoke's."""
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    at = {int(meta.input_size): interp}
    for size in meta.tta_sizes:
        at[size], _ = make_interpreter(path, threads, delegate, input_size=size)

    def run(view: np.ndarray) -> np.ndarray:  # a view at another size arrives as float (resized)
        it = at[int(view.shape[0])]
        it.set_tensor(d["index"], view[None].astype(d["dtype"], copy=False))
        it.invoke()
        return it.get_tensor(o["index"])

    return lambda x: meta.with_tta(run, x)


def bench_models(models: list[str], threads: list[int], warmup: int = 20, runs: int = 200,
                 delegate: str = "xnnpack", input_source: str = "random", progress=None) -> dict:
    from agegate.edge.metadata import sidecar_path

    from .environment import environment

    configs = []
    runtime = ""
    for m in models:
        p = Path(m)
        validate_tflite_file(p)
        quant, invokes, meta = "unknown", 1, None
        if sidecar_path(p).exists():
            from agegate.edge.metadata import read_metadata

            meta = read_metadata(p)
            quant, invokes = meta.quantization, meta.runs_per_prediction
        for t in threads:
            before = rss_mb()
            t0 = time.perf_counter()
            interp, runtime = make_interpreter(p, t, delegate)
            init_ms = (time.perf_counter() - t0) * 1000
            added = rss_mb() - before
            if input_source.startswith("real:"):
                xs = _real_inputs(p, interp, Path(input_source[5:]))
            else:
                xs = _inputs(interp, input_source)
            i, o = interp.get_input_details()[0], interp.get_output_details()[0]
            run = ModelRun(str(p), t, round(p.stat().st_size / 1e6, 3), np.dtype(i["dtype"]).name,
                           np.dtype(o["dtype"]).name, quant, round(init_ms, 2), round(added, 1), invokes)
            face = _face_views(p, meta, interp, t, delegate) if invokes > 1 else None
            configs.append((run, interp, i["index"], xs, face))
    for run, interp, idx, xs, face in configs:  # warm-up
        for k in range(warmup):
            interp.set_tensor(idx, xs[k % len(xs)])
            interp.invoke()
            if face is not None:
                face(xs[k % len(xs)][0])
    for r in range(runs):  # round robin
        for run, interp, idx, xs, face in configs:
            x = xs[r % len(xs)]
            interp.set_tensor(idx, x)
            t0 = time.perf_counter()
            interp.invoke()
            run.samples_ms.append((time.perf_counter() - t0) * 1000)
            # A whole face: every view (the face, its mirror image, the same at further sizes), measured, not
            # multiplied.
            if face is not None:
                t0 = time.perf_counter()
                face(x[0])
                run.face_samples_ms.append((time.perf_counter() - t0) * 1000)
            else:
                run.face_samples_ms.append(run.samples_ms[-1])
        if progress:
            progress(1)
    rows = []
    base = {}
    for run, *_ in configs:
        row = {k: v for k, v in asdict(run).items() if k not in ("samples_ms", "face_samples_ms")}
        row.update(run.stats())
        base.setdefault(run.threads, row["p50_ms"])
        rows.append(row)
    first = Path(models[0]).name
    for row in rows:  # the first model at the same thread count is the baseline
        row["ratio_vs_first"] = round(base[row["threads"]] / row["p50_ms"], 3)
    return {"kind": "model", "baseline": first, "warmup": warmup, "runs": runs, "input": input_source,
            "environment": environment(runtime, runtime_version(runtime) if runtime else "", delegate),
            "peak_rss_mb": round(peak_rss_mb(), 1), "results": rows}
