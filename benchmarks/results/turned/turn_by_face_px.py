"""Does the box read a buyer as more turned when the face is small? The fleet report flags a camera when most of its
buyers' turns (each the median |FaceBox.turn| of their frames, `Track.turn`) are past the set-up line, so a reading
that grows as faces shrink would flag a far camera as a turned one.

400 val photos of each set (seeded), turned up to 0.1 by the photo detector (facing the camera) and past 0.2, each
shown as a replay shows a buyer (`replay.buyer_frames`: the head patch on a till background, sway, light, noise,
JPEG) for 15 frames at each face size, read by the camera profile as the box reads them; per size and group: the
median of the buyers' turns and the share read past 0.2.

    python benchmarks/results/turned/turn_by_face_px.py > benchmarks/results/turned/turn-by-face-px-val.txt
"""
import numpy as np

from agegate.benchmarks.environment import cpu_info
from agegate.convert.evaluate import select_records
from agegate.convert.replay import buyer_frames, load_buyers, till_background
from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.preprocess import decode_image
from agegate.edge.setup_view import MAX_SETUP_TURN

SIZES = (60, 85, 110, 150, 190, 250)
FRAMES = 15  # Track's window

photo_detector, camera = FaceDetector(DetectorOptions.for_photos()), FaceDetector(DetectorOptions())
records, photo_turn = [], []
for data in ("../shared/datasets/aaf", "../shared/datasets/utkface"):
    for rec in select_records(data, "auto", None, "val", 400, seed=5):
        found = photo_detector.detect(decode_image(rec.path))
        t = None if not found else found[0].turn
        if t is not None and (abs(t) <= 0.1 or abs(t) > MAX_SETUP_TURN):
            records.append(rec)
            photo_turn.append(abs(t))
buyers, _ = load_buyers(records)
turn_of = dict(zip((str(r.path) for r in records), photo_turn))
print(f"{len(buyers)} val buyers placed ({sum(turn_of[b.path] <= 0.1 for b in buyers)} facing the camera by their "
      f"photo, |turn| <= 0.1; {sum(turn_of[b.path] > MAX_SETUP_TURN for b in buyers)} turned past {MAX_SETUP_TURN}); "
      f"{FRAMES} frames each; cpu: {cpu_info()}")
rng = np.random.default_rng(0)
bg = till_background(rng)
for px in SIZES:
    read = {"facing": [], "turned": []}
    for b in buyers:
        turns = [f[0].turn for f in (camera.detect(rgb) for rgb in buyer_frames(b, FRAMES, bg, rng, (px, px)))
                 if f and f[0].turn is not None]
        if turns:
            read["facing" if turn_of[b.path] <= 0.1 else "turned"].append(float(np.median(np.abs(turns))))
    print(f"face {px:3d} px: " + "; ".join(
        f"{g} by photo: {len(v)} seen, median turn {np.median(v):.3f}, "
        f"past {MAX_SETUP_TURN}: {np.mean(np.array(v) > MAX_SETUP_TURN):.0%}" for g, v in read.items() if v))
