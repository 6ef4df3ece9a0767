"""Is a turn read on a till frame the turn read on the photo? The turned-faces probe reads `FaceBox.turn` with the
photo detector on each photo as it is; the box (and its set-up view) reads it with the camera profile on a 640x480
frame. 400 val photos of each set (seeded), the photo scaled to 300 px on its longer side in a grey frame (faces
about 200 px, as a buyer near the till): both readings, side by side.

    python benchmarks/results/turned/photo_vs_camera.py > benchmarks/results/turned/photo-vs-camera-val.txt
"""
import cv2
import numpy as np

from agegate.benchmarks.environment import cpu_info
from agegate.convert.evaluate import select_records
from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.preprocess import decode_image

photo_detector, camera = FaceDetector(DetectorOptions.for_photos()), FaceDetector(DetectorOptions())
pairs = []
for data in ("../shared/datasets/aaf", "../shared/datasets/utkface"):
    for rec in select_records(data, "auto", None, "val", 400, seed=5):
        rgb = decode_image(rec.path)
        found = photo_detector.detect(rgb)
        if not found or found[0].turn is None:
            continue
        k = 300 / max(rgb.shape[:2])
        small = cv2.resize(rgb, (round(rgb.shape[1] * k), round(rgb.shape[0] * k)))
        frame = np.full((480, 640, 3), 96, np.uint8)
        frame[90:90 + small.shape[0], 170:170 + small.shape[1]] = small
        seen = camera.detect(frame)
        if seen and seen[0].turn is not None:
            pairs.append((abs(found[0].turn), abs(seen[0].turn)))
a = np.array(pairs)
print(f"{len(a)} photos found by both; cpu: {cpu_info()}")
print(f"median |turn|: photo {np.median(a[:, 0]):.3f}, till frame {np.median(a[:, 1]):.3f}; till frame ~ "
      f"{np.sum(a[:, 0] * a[:, 1]) / np.sum(a[:, 0] ** 2):.2f} x photo (least squares through 0), correlation "
      f"{np.corrcoef(a[:, 0], a[:, 1])[0, 1]:.2f}")
for lo, hi in ((0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 9)):
    m = (a[:, 0] >= lo) & (a[:, 0] < hi)
    print(f"photo |turn| {lo}-{hi if hi < 9 else ''}: {m.sum():4d} photos, till frame median {np.median(a[m, 1]):.3f}, "
          f"past 0.2 on the till frame: {np.mean(a[m, 1] > 0.2):.0%}")
