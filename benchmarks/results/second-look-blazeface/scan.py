"""Which photos does the second look's change (BlazeFace alone, not the photo profile's fallbacks) give
another largest face? Every image of both data sets, every split, through the photo profile (eval --detect,
train --crop box), detected as now and as before the change. Run once, 2026-12-06, from the repository root:

    python benchmarks/results/second-look-blazeface/scan.py > benchmarks/results/second-look-blazeface/scan.txt
"""
from multiprocessing import Pool
from agegate.edge.detect import FaceDetector, DetectorOptions
import agegate.edge.detect as dm
from agegate.edge.preprocess import decode_image
from agegate.convert.evaluate import read_splits
D='../shared/datasets'
def init():
    global new, old
    new=FaceDetector(DetectorOptions.for_photos())
    old=FaceDetector(DetectorOptions.for_photos())
    def look_again(rgb, face, inside=False):  # as before the fix: the second look with the fallbacks
        region = dm._square_around(face, dm.REFINE_REGION, rgb.shape)
        if region is None:
            return None
        x0, y0, x1, y1 = region
        found = [f.shifted(x0, y0) for f in old._detect_frame(rgb[y0:y1, x0:x1])]
        if inside:
            found = [f for f in found if face.contains(*f.center)]
        cx, cy = face.center
        return min(found, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2, default=None)
    old._look_again=look_again
def work(rec):
    img=decode_image(rec[0])
    a=new.detect(img); b=old.detect(img)
    fa=a[0].corners if a else None; fb=b[0].corners if b else None
    return rec[0], rec[1], fa!=fb, len(a)!=len(b)
if __name__=='__main__':
    recs=[]
    for split in ['train','val','test']:
        for s in read_splits([D+'/utkface',D+'/aaf'],'auto',None,split):
            recs+= [(str(r.path), split) for r in s.records]
    with Pool(2, init) as p:
        res=p.map(work, recs, chunksize=64)
    ch=[r for r in res if r[2]]
    print(len(recs), 'images; largest face changed:', len(ch), '; number of faces changed:', sum(r[3] for r in res))
    for r in ch: print(r)
