"""Which photos do the second look's two new rules give other faces? (The face it finds again must have its centre
inside the first box, for sure faces too, not only doubtful ones; a sure face that is, after its second look, a
face already kept, overlapping it or one's centre inside the other, is dropped, as an overlapping doubtful one
was.) Every image of both data sets, every split,
through the photo profile (eval --detect, train --crop box), detected as now and with the rule as it was.
Run once, 2026-12-07, from the repository root:

    python benchmarks/results/second-look-inside/scan.py > benchmarks/results/second-look-inside/scan.txt
"""
from multiprocessing import Pool

from agegate.convert.evaluate import read_splits
from agegate.edge.detect import NMS_IOU, DetectorOptions, FaceDetector, iou
from agegate.edge.preprocess import decode_image

D = '../shared/datasets'


def init():
    global new, old
    new = FaceDetector(DetectorOptions.for_photos())
    old = FaceDetector(DetectorOptions.for_photos())

    def refine(rgb, face):  # as before the rule: a sure face took the face found nearest its centre, anywhere
        h, w = rgb.shape[:2]
        doubtful = face.score < old.options.min_score
        if face.side >= old.options.refine_below * max(h, w):
            return None if doubtful else face
        found = [f for f in old._faces_around(rgb, face) if not doubtful or face.contains(*f.center)]
        cx, cy = face.center
        nearest = min(found, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2, default=None)
        return nearest or (None if doubtful else face)

    def refined(rgb, faces):  # as before: every sure face kept, only doubtful ones checked against those kept
        sure = [f for f in faces if f.score >= old.options.min_score]
        kept = [refine(rgb, f) for f in sure]
        for f in (f for f in faces if f.score < old.options.min_score):
            g = refine(rgb, f)
            if g is not None and not any(iou(g.corners, k.corners) >= NMS_IOU for k in kept):
                kept.append(g)
        return sorted(kept, key=lambda f: -f.area)
    old._refine, old._refined = refine, refined


def work(rec):
    img = decode_image(rec[0])
    a, b = new.detect(img), old.detect(img)
    return rec[0], rec[1], (a[0].corners if a else None) != (b[0].corners if b else None), \
        [f.corners for f in a] != [f.corners for f in b]


if __name__ == '__main__':
    recs = []
    for split in ['train', 'val', 'test']:
        for s in read_splits([D + '/utkface', D + '/aaf'], 'auto', None, split):
            recs += [(str(r.path), split) for r in s.records]
    with Pool(2, init) as p:
        res = p.map(work, recs, chunksize=64)
    print(len(recs), 'images; largest face changed:', sum(r[2] for r in res), '; any face changed:',
          sum(r[3] for r in res))
    for r in res:
        if r[2] or r[3]:
            print(r)
