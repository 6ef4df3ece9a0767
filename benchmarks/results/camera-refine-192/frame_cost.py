"""What the box pays per frame for its second look at a face, by face size and refine line (the rule's item 4).

`agegate bench frames` times one face of 80 px (the demo portrait in a 640x480 frame), under both lines, so it
cannot show what moving the line from 128 to 192 px costs. Here the demo portrait is scaled so that the box's
first detector pass finds a face of about 100, 150 and 175 px, put in a 640x480 grey frame, and the box
(`BoxPipeline`, the shipped model, 2 threads) times it with the second look off, under 128 px (0.2) and under
192 px (0.3), interleaved in one process, beside an empty frame; the ratios are the result.

    python benchmarks/results/camera-refine-192/frame_cost.py > benchmarks/results/camera-refine-192/frame-cost.txt
"""
from __future__ import annotations

import statistics

import cv2
import numpy as np

from agegate.benchmarks.environment import environment
from agegate.benchmarks.frames_bench import synthetic_frame, time_frames
from agegate.edge.default_model import assets_dir, default_model_path
from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.pipeline import BoxOptions, BoxPipeline
from agegate.edge.preprocess import decode_image
from agegate.edge.runtime import AgeModel, runtime_version

LINES = {"one pass": 0.0, "under 128 px (0.2)": 0.2, "under 192 px (0.3)": 0.3}
TARGETS = (100, 150, 175)
ROUNDS, PER_ROUND = 12, 10


def paste(portrait: np.ndarray, scale: float) -> np.ndarray:
    """The portrait scaled by `scale`, in the middle of `agegate bench frames`' empty till (a head larger than the
    frame: its middle; `synthetic_frame` pastes a head that fits)."""
    frame = synthetic_frame((640, 480), False)
    img = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    ys, xs = max(0, (h - 480) // 2), max(0, (w - 640) // 2)
    img = img[ys : ys + 480, xs : xs + 640]
    h, w = img.shape[:2]
    y0, x0 = (480 - h) // 2, (640 - w) // 2
    frame[y0 : y0 + h, x0 : x0 + w] = img
    return frame


def frame_with_face(portrait: np.ndarray, face_px: float) -> np.ndarray:
    """A frame whose face the box's first pass finds nearest `face_px` wide, of scales 0.10-3.00 of the portrait
    (its face found is not a smooth function of the scale, so the scales are tried, not solved for)."""
    one_pass = FaceDetector(DetectorOptions(refine_below=0.0))
    sides = {}
    for scale in np.arange(0.10, 3.00, 0.02):
        faces = one_pass.detect(paste(portrait, float(scale)))
        if faces:
            sides[float(scale)] = faces[0].side
    return paste(portrait, min(sides, key=lambda k: abs(sides[k] - face_px)))


def timed(boxes: dict[str, DetectorOptions], targets) -> tuple[dict, dict, dict]:
    """Each box (a name and its detector options) timed on an empty frame and frames with a face of about each
    of `targets` px, interleaved: (frames, first-pass faces per frame, p50 ms per (frame, box)). Prints the CPU."""
    model = AgeModel(default_model_path(), threads=2)
    portrait = decode_image(sorted((assets_dir() / "demo").glob("*.jpg"))[0])
    frames = {"empty": synthetic_frame((640, 480), False)} | {f"face ~{t} px": frame_with_face(portrait, t) for t in targets}
    pipes = {name: BoxPipeline(model, BoxOptions(threads=2, detector=options), diagnostic=True)
             for name, options in boxes.items()}
    one_pass = FaceDetector(DetectorOptions(refine_below=0.0))
    found = {name: one_pass.detect(rgb) for name, rgb in frames.items()}
    times: dict[tuple[str, str], list[float]] = {(f, b): [] for f in frames for b in boxes}
    for _ in range(ROUNDS):  # interleaved: drift of a shared CPU falls on every cell alike
        for fname, rgb in frames.items():
            for name, pipe in pipes.items():
                times[fname, name] += time_frames(pipe, rgb, PER_ROUND)
    env = environment(model.runtime, runtime_version(model.runtime), "xnnpack")
    print(f"cpu: {env['cpu_model']}, {env['cores']} cores; isa: {' '.join(env['isa'])}; {ROUNDS * PER_ROUND} frames per cell, p50 ms")
    return frames, found, {key: statistics.median(t) for key, t in times.items()}


def main() -> None:
    frames, found, p50 = timed({line: DetectorOptions(refine_below=v) for line, v in LINES.items()}, TARGETS)
    print("| frame | first-pass face px | " + " | ".join(LINES) + " |")
    print("|---|---|" + "---|" * len(LINES))
    for fname in frames:
        px = f"{found[fname][0].side:.0f}" if found[fname] else "none"
        cells = [f"{p50[fname, line]:.2f} ({p50[fname, line] / p50['empty', line]:.2f}x empty)" for line in LINES]
        print(f"| {fname} | {px} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
