"""The split buyers of `split_probe.py`'s output, one line each: per frame at the till, the side the replay placed
the face at, then each of the buyer's tracks with the side of its box (`track/side`), a `*` per frame it has
looked like someone else (three in a row end the track), `W` when someone waits behind. Run once, 2026-12-07:

    python sides.py split-probe-seed1-before.txt > sides-seed1-before.txt
"""
import ast
import re
import sys

for block in open(sys.argv[1]).read().split('\n== ')[1:]:
    lines = block.split('\n')
    b = int(lines[0].split()[1])
    seq = []
    for line in lines[1:]:
        m = re.match(r'(\d+) who (\S+) placed (\[.*?\]) tracks (\[.*?\]) made', line)
        if not m or m.group(2) != str(b):
            continue
        placed, tracks = ast.literal_eval(m.group(3)), ast.literal_eval(m.group(4))
        side = [p[1] for p in placed if p[0] == b]
        mine = [(t[0], t[2], t[4]) for t in tracks if t[1] == b]
        seq.append(f"{side[0] if side else '-'}:" + ",".join(f"{t}/{s}{'*' * c}" for t, s, c in mine)
                   + ("W" if len(placed) > 1 else ""))
    print(lines[0][:150])
    print("  ", " ".join(seq))
