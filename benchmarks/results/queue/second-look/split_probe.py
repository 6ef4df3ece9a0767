"""Where replayed buyers in a queue are split: per frame, which track showed each split buyer (or one left
with no decision), the side of its box, and how each track ended. The sample is `agegate replay --limit N
--seed S`'s; the box is the installed package's (the box before the second-look rules was run as a worktree of
commit 4c950ec on PYTHONPATH). Run once, 2026-12-07, from the repository root:

    PYTHONPATH=<worktree of 4c950ec> python benchmarks/results/queue/second-look/split_probe.py val 600 1 1.0 \
        > benchmarks/results/queue/second-look/split-probe-seed1-before.txt

Each line: frame, the buyer at the till, every face placed (buyer, side px), every track seen on that frame
(track, owner, box side, waiting, frames it has looked like someone else, good frames), decisions made.
"""
import json, sys
from collections import Counter, defaultdict
from agegate.convert.evaluate import select_records
from agegate.convert.replay import ReplayOptions, load_buyers, till_frames, match_decisions, FPS
from agegate.edge.capture import Frame
from agegate.edge.pipeline import BoxPipeline, BoxOptions
from agegate.edge.runtime import AgeModel
from agegate.edge.default_model import default_model_path
import numpy as np

split, limit, seed, queue = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
D = "../shared/datasets"  # run from the repository root (this run: /work/shared/datasets, the same files)
recs = [r for d in (f"{D}/utkface", f"{D}/aaf") for r in select_records(d, "auto", None, split, whole_if_unsplit=True)]
pick = np.random.default_rng(seed).permutation(len(recs))[:limit]  # as agegate replay --limit --seed samples
recs = [recs[i] for i in sorted(pick)]
buyers, _ = load_buyers(recs)
pipe = BoxPipeline(AgeModel(default_model_path(), threads=1), BoxOptions())
opts = ReplayOptions(seed=seed, queue=queue)
timeline = []  # per frame: (who, [(track, owner, side, behind, changed, state)])
track_frames = defaultdict(Counter)
decisions, t_frame = [], 1.7e9
for n, (rgb, now) in enumerate(till_frames(buyers, opts, tail=pipe.options.max_missed + 2)):
    t_frame += 1 / FPS
    made = pipe.process(Frame(n, t_frame, rgb, steady=t_frame))
    row = []
    for t in pipe.tracker.tracks.values():
        if t.last_ts == t_frame:
            own = now.owner(t.box)
            track_frames[t.track_id][own] += 1
            row.append((t.track_id, own, round(t.box.side), t.waiting, t.changed, t.good_frames))
    placed = [(b, round(p.face)) for b, p in now.placed]
    timeline.append((n, now.who, placed, row, [(d.track_id, d.decision.value, d.reason, d.good_frames) for d in made]))
    decisions += made
last = pipe.finish()
decisions += last
timeline.append((-1, None, [], [], [(d.track_id, d.decision.value, d.reason, d.good_frames) for d in last]))
outcomes = match_decisions(buyers, decisions, track_frames)
splits = [o for o in outcomes if len(o.decisions) > 1]
nodec = [o for o in outcomes if not o.decisions and o.inherited is None]
print(f"{len(outcomes)} buyers, split {len(splits)}, no decision {len(nodec)}, glimpses {pipe.metrics.glimpses}, bystanders {pipe.metrics.bystanders}")
for o in splits + nodec:
    b = o.buyer.index
    print(f"\n== buyer {b} age {o.buyer.age} {o.buyer.path.split('/')[-1]} decisions "
          f"{[(d.track_id, d.decision.value, d.reason, d.good_frames, d.frames) for d in o.decisions]}")
    for n, who, placed, row, made in timeline:
        mine = [r for r in row if r[1] == b] + [m for m in made if track_frames[m[0]].most_common(1) and track_frames[m[0]].most_common(1)[0][0] == b]
        if who == b or any(p[0] == b for p in placed) or mine:
            print(n, "who", who, "placed", placed, "tracks", row, "made", made)
