"""Where bgen's own plain MD meets issue 25's quality bar, per held-out dipeptide: the first
prefix of measure25.sh md's curve with E-W2 <= floor + 0.2 kT, T-W2 <= floor + 0.1 and every
basin within 0.03 of the reference, and the scores of the whole run. The floors are
measure25.sh floor's (seed 2 against seed 1 of the committed, thinned references; seeds 3+4 against 1+2 where references.sh more ran them). The prefixes are scored against the pooled reference with all their frames, which favours MD a little against a floor of 1,000 frames against 1,000 (table25.py's "at the floor's sizes"). Reads the
committed copies in md25/ (XY.json: the curve; XY-floor.json: the floor's metrics), or with a
directory argument measure25.sh's own outputs there (m25-floor/, m25-*/XY-md-curve/):
  python3 md_bar25.py [MEASURE25_DIR MODEL_OUT_DIR]"""
import json
import os
import sys

from m25 import names

here = os.path.dirname(os.path.abspath(__file__))
work = sys.argv[1:3]

print("| dipeptide | bar E-W2 / T-W2 | MD meets the bar at: ns | wall s | whole run: ns | wall s | E-W2 | T-W2 | basin err |")
print("|---|---|---|---|---|---|---|---|---|")
for s in names:
    if work:
        fp = os.path.join(work[0], f"m25-floor/{s}/metrics.json")
        cp = os.path.join(work[0], work[1], f"{s}-md-curve/curve.json")
    else:
        fp, cp = os.path.join(here, f"md25/{s}-floor.json"), os.path.join(here, f"md25/{s}.json")
    if not (os.path.exists(fp) and os.path.exists(cp)):
        print(f"| {s} | - | - | - | - | - | - | - | - |")
        continue
    fl, c = json.load(open(fp)), json.load(open(cp))
    pts = c["points"]
    be, bt = fl["energy_w2"] + 0.2, fl["torus_w2"] + 0.1
    hit = next((p for p in pts if p["energy_w2"] <= be and p["torus_w2"] <= bt and p["basin_error"] <= 0.03), None)
    last = pts[-1]
    print(
        f"| {s} | {be:.2f} / {bt:.2f} |",
        f"{hit['ns']:.2f} | {hit['wall_seconds']:.0f} |" if hit else f"not in {last['ns']:.1f} | > {last['wall_seconds']:.0f} |",
        f"{last['ns']:.1f} | {last['wall_seconds']:.0f} | {last['energy_w2']:.2f} | {last['torus_w2']:.2f} | {last['basin_error']:.3f} |",
    )
