"""What the box pays per frame for `refine_margin` 1.25 (the rule's item 4): a face whose first box reads 128-160 px
is looked at again. `camera-refine-192/frame_cost.py`'s frames (the demo portrait scaled so the first detector pass
finds a face of about 100, 140, 150 and 175 px, in a 640x480 grey frame, beside an empty one), timed by the box
(`BoxPipeline`, the shipped model, 2 threads) with the margin off (1.0, the box now) and on (1.25), interleaved in
one process; the ratios within this run are the result.

    python benchmarks/results/camera-refine-margin-draws/frame_cost.py > benchmarks/results/camera-refine-margin-draws/frame-cost.txt
"""
from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

from agegate.benchmarks.environment import environment
from agegate.benchmarks.frames_bench import synthetic_frame, time_frames
from agegate.edge.default_model import assets_dir, default_model_path
from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.pipeline import BoxOptions, BoxPipeline
from agegate.edge.preprocess import decode_image
from agegate.edge.runtime import AgeModel, runtime_version

_spec = importlib.util.spec_from_file_location(
    "frame_cost_192", Path(__file__).resolve().parents[1] / "camera-refine-192" / "frame_cost.py")
_192 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_192)
frame_with_face = _192.frame_with_face  # one way of making a frame with a face of a given first-pass size

MARGINS = {"margin off (1.0)": 1.0, "margin 1.25": 1.25}
TARGETS = (100, 140, 150, 175)
ROUNDS, PER_ROUND = 12, 10


def main() -> None:
    model = AgeModel(default_model_path(), threads=2)
    portrait = decode_image(sorted((assets_dir() / "demo").glob("*.jpg"))[0])
    frames = {"empty": synthetic_frame((640, 480), False)} | {f"face ~{t} px": frame_with_face(portrait, t) for t in TARGETS}
    pipes = {name: BoxPipeline(model, BoxOptions(threads=2, detector=DetectorOptions(refine_margin=m)), diagnostic=True)
             for name, m in MARGINS.items()}
    one_pass = FaceDetector(DetectorOptions(refine_below=0.0))
    found = {name: one_pass.detect(rgb) for name, rgb in frames.items()}
    times: dict[tuple[str, str], list[float]] = {(f, m): [] for f in frames for m in MARGINS}
    for _ in range(ROUNDS):  # interleaved: drift of a shared CPU falls on every cell alike
        for fname, rgb in frames.items():
            for name, pipe in pipes.items():
                times[fname, name] += time_frames(pipe, rgb, PER_ROUND)
    env = environment(model.runtime, runtime_version(model.runtime), "xnnpack")
    print(f"cpu: {env['cpu_model']}, {env['cores']} cores; isa: {' '.join(env['isa'])}; "
          f"{ROUNDS * PER_ROUND} frames per cell, p50 ms")
    print("| frame | first-pass face px | " + " | ".join(MARGINS) + " | margin on / off |")
    print("|---|---|" + "---|" * (len(MARGINS) + 1))
    for fname in frames:
        px = f"{found[fname][0].side:.0f}" if found[fname] else "none"
        p50 = {name: statistics.median(times[fname, name]) for name in MARGINS}
        off, on = p50.values()
        print(f"| {fname} | {px} | " + " | ".join(f"{v:.2f}" for v in p50.values()) + f" | {on / off:.2f}x |")


if __name__ == "__main__":
    main()
