"""Issue 25: alphaR and alphaL of residue 2 in each named training dipeptide, from its own data
(the 310 K rung of its replica-exchange shard) and from each model's proposals (shrink25.sh's
DIR/NAME/samples.npy): whether a model has learned what the pair does, or only what each
residue prefers. Usage, in pairs25.sh's directory:
  python3 pairs25.py pairs-remd shrink25-pairs-tarflow shrink25-pairs-arbg [--json out.json]"""
import json
import os
import sys

import numpy as np

from m25 import option, shares

args = sys.argv[1:]
out = option(args, "--json")
shards, models = os.path.join(args[0], "shards"), args[1:]
rows = {}
print("dipeptide  data alphaR/alphaL  " + "  ".join(f"{m}" for m in models))
for name in sorted(os.listdir(shards)):
    d = os.path.join(shards, name)
    pdb = os.path.join(d, "topology.pdb")
    have = [m for m in models if os.path.exists(os.path.join(m, name, "samples.npy"))]
    if not have or not os.path.exists(os.path.join(d, "frames.npy")):
        continue
    rung = np.load(os.path.join(d, "replica.npy")) % 4
    data = shares(np.load(os.path.join(d, "frames.npy"))[rung == 0], pdb)
    row = {"data": data}
    for m in have:
        row[m] = shares(np.load(os.path.join(m, name, "samples.npy")), pdb)
    rows[name] = row
    print(f"{name}  {data[0]:.3f}/{data[1]:.3f}  "
          + "  ".join(f"{row[m][0]:.3f}/{row[m][1]:.3f}" if m in row else "-" for m in models))
for m in models:
    err = [abs(r[m][0] - r["data"][0]) for r in rows.values() if m in r]
    if err:
        print(f"{m}: mean |alphaR - data| {np.mean(err):.3f} over {len(err)}")
if out:
    json.dump(rows, open(out, "w"), indent=1)
