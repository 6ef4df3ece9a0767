"""End-to-end frames per second of the box pipeline, with a per-stage breakdown and RSS over time."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from agegate.edge.capture import FrameSource, SourceOptions
from agegate.edge.detect import DetectorOptions
from agegate.edge.pipeline import BoxOptions, BoxPipeline
from agegate.edge.runtime import AgeModel, runtime_version
from agegate.edge.stats import STAGES

from .environment import environment
from .latency import peak_rss_mb, rss_mb


def make_bench_video(face_paths: list[Path], out: Path, frames: int = 300, size=(640, 480), fps: int = 30) -> Path:
    """A 640x480 clip with one face that drifts a little, looping over the given faces every 60 frames."""
    w, h = size
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    faces = [cv2.imread(str(p)) for p in face_paths]
    for i in range(frames):
        img = faces[(i // 60) % len(faces)]
        s = 220 / max(img.shape[:2])
        img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)))
        frame = np.full((h, w, 3), 100, np.uint8)
        y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2 + int(10 * np.sin(i / 10))
        frame[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
        writer.write(frame)
    writer.release()
    return out


#: `bench pipeline --profile`: the box as it ships, and the first release's pipeline (every frame aged,
#: padded retry and Haar on camera frames, no downscaling before detection, the image descriptor alone) to
#: compare against in one run.
PROFILES = {
    "box": {},
    "landed": {"detector": DetectorOptions(pad_retry=True, fallback_haar=True, max_side=1 << 30, refine_below=0.0),
               "follow_decided": False, "look_features": False},
}


def bench_pipeline(source: str, model: str, frames: int | None = None, threads: int = 2, loops: int = 1,
                   rss_every: int = 500, profile: str = "box") -> dict:
    age_model = AgeModel(model, threads=threads)
    pipeline = BoxPipeline(age_model, BoxOptions(threads=threads, **PROFILES[profile]), diagnostic=profile != "box")
    rss_start = rss_mb()
    rss_samples: list[tuple[int, float]] = []
    n = 0
    t0 = time.perf_counter()
    for _ in range(max(1, loops)):
        src = FrameSource(source, SourceOptions())

        def on_frame(frame, pipe):
            nonlocal n
            n += 1
            if n % rss_every == 0:
                rss_samples.append((n, round(rss_mb(), 1)))

        remaining = None if frames is None else frames - n
        if remaining is not None and remaining <= 0:
            break
        pipeline.run(src, on_frame=on_frame, max_frames=remaining)
    seconds = time.perf_counter() - t0
    stages = {s: dict(zip(("p50_ms", "p95_ms"), map(lambda v: round(v, 3), pipeline.metrics.percentiles(s))))
              for s in STAGES + ("frame",)}
    rss = [r for _, r in rss_samples]
    return {"kind": "pipeline", "profile": profile, "source": source, "model": str(model), "threads": threads,
            "frames": n,
            "seconds": round(seconds, 2), "fps": round(n / seconds, 2), "stages": stages,
            "decisions": dict(pipeline.metrics.decisions), "rss_start_mb": round(rss_start, 1),
            "rss_samples": rss_samples, "rss_growth_mb": round(rss[-1] - rss[0], 1) if len(rss) > 1 else 0.0,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "environment": environment(age_model.runtime, runtime_version(age_model.runtime), "xnnpack")}
