"""What one frame costs the box, by what it shows: an empty till, one buyer, a huge frame.

Nobody at the till is the usual state, so an empty frame must not cost more than a busy one.
Each case runs the box's detector + pipeline on a synthetic frame built from a demo portrait,
for the box's camera profile and for the landed (previous) detector profile, in the same
process, so the ratio between them is the result (timings compare only within one run).
The landed profile (pipeline_bench.PROFILES) is the first release's pipeline: padded retry and
Haar fallback on every empty camera frame, no downscaling before detection, every face aged on
every frame. The box's frames are also timed with one detector pass (`ONE_PASS`, the box before
2026-12-04): the demo portrait's face is 80 px, under the camera's refine_below, so "one face" shows what
the second look at a small face costs.
"""
from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from agegate.edge.capture import Frame
from agegate.edge.default_model import assets_dir
from agegate.edge.detect import DetectorOptions
from agegate.edge.pipeline import BoxOptions, BoxPipeline
from agegate.edge.preprocess import decode_image
from agegate.edge.runtime import AgeModel, runtime_version

from .environment import environment, run_fresh
from .pipeline_bench import PROFILES

CASES = {"empty 640x480": ((640, 480), False), "one face 640x480": ((640, 480), True),
         "empty 1920x1080": ((1920, 1080), False), "empty 3840x2160": ((3840, 2160), False)}


#: The box with one detector pass (no second look at small faces: detect.CAMERA_REFINE_BELOW).
ONE_PASS = {"detector": DetectorOptions(refine_below=0.0)}


def synthetic_frame(size: tuple[int, int], face: bool, head: float = 0.8) -> np.ndarray:
    """A grey-gradient frame, with a demo portrait `head` x the frame height tall when `face`
    (built in place: no full-size temporaries, so the huge case measures the frame, not its making)."""
    w, h = size
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = np.linspace(70, 130, w).astype(np.uint8)[None, :, None]
    if face:
        img = decode_image(sorted((assets_dir() / "demo").glob("*.jpg"))[0])
        s = head * h / max(img.shape[:2])  # a buyer close to the till: the head fills much of the frame
        img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
        frame[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return frame


def time_frames(pipeline: BoxPipeline, rgb: np.ndarray, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        pipeline.process(Frame(i, time.time(), rgb))
        out.append((time.perf_counter() - t0) * 1000)
    return out


def huge_frame_cost(model: str, side: int = 8000, profile: str = "box") -> dict:
    """One side x side frame with a face (a head 30 % of the frame tall), in a fresh process: seconds, the
    process's RSS holding the frame before processing, and its peak RSS (the frame alone is side^2 x 3 bytes)."""
    code = (
        "import json,time;from agegate.benchmarks.frames_bench import *;"
        "from agegate.benchmarks.environment import vm_mb;"
        f"m=AgeModel({model!r});p=BoxPipeline(m,BoxOptions(**PROFILES[{profile!r}]),diagnostic={profile != 'box'});"
        f"f=synthetic_frame(({side},{side}),True,0.3);r0=vm_mb('VmRSS');"
        "t=time.perf_counter();p.process(Frame(0,time.time(),f));s=time.perf_counter()-t;"
        "print(json.dumps({'seconds':round(s,3),'rss_with_frame_mb':round(r0,1),'peak_rss_mb':round(vm_mb('VmHWM'),1),"
        "'frame_mb':round(f.nbytes/2**20,1),'faces':p.metrics.faces}))"
    )
    try:
        return run_fresh(code)
    except RuntimeError as e:  # the huge frame may be what kills it: a result row that says so
        return {"error": str(e)}


def bench_frames(model: str, threads: int = 2, runs: int = 60, huge: int = 8000) -> dict:
    age_model = AgeModel(model, threads=threads)
    cases: dict[str, dict] = {}
    for name, (size, face) in CASES.items():
        rgb = synthetic_frame(size, face)
        row = {}
        for prof, kw in {**PROFILES, "box one pass": ONE_PASS}.items():
            # other profiles are comparisons, not the box: no warning that they decide otherwise
            pipe = BoxPipeline(age_model, BoxOptions(threads=threads, **kw), diagnostic=prof != "box")
            t = time_frames(pipe, rgb, runs)[3:]
            row[prof] = {"p50_ms": round(statistics.median(t), 3), "p95_ms": round(float(np.percentile(t, 95)), 3),
                         "faces_per_frame": round(pipe.metrics.faces / max(1, pipe.metrics.frames), 2)}
        cases[name] = row
    result = {"kind": "frames", "model": str(model), "threads": threads, "runs": runs, "cases": cases,
              "huge": {"side": huge, **{p: huge_frame_cost(str(model), huge, p) for p in PROFILES}},
              "environment": environment(age_model.runtime, runtime_version(age_model.runtime), "xnnpack")}
    box_empty, box_face = cases["empty 640x480"]["box"]["p50_ms"], cases["one face 640x480"]["box"]["p50_ms"]
    result["empty_vs_face_ratio"] = round(box_empty / box_face, 3)
    result["empty_speedup_vs_landed"] = round(cases["empty 640x480"]["landed"]["p50_ms"] / box_empty, 1)
    result["small_face_refine_cost"] = round(box_face / cases["one face 640x480"]["box one pass"]["p50_ms"], 2)
    return result
