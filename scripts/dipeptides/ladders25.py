"""Issue 25: how well each training dipeptide's replica-exchange data pins its basins. For every
finished shard of a run (train_data.sh's: independent ladders of 4 rungs, replica % 4 the rung,
replica // 4 the ladder), alphaR and alphaL of residue 2 at 310 K in each ladder, and the
standard error of their mean over ladders. Sorted by it, worst last; with --over S, prints only
the names whose larger standard error exceeds S, one per line (a --sequences-file for longer
MD), and with --below NS only those that run shorter than NS ns per replica (converge25.sh's
rounds). Usage: python3 ladders25.py train-remd [--over 0.03 [--below 1]]"""
import json
import os
import sys

import numpy as np

from m25 import option, shares

args = sys.argv[1:]
over = option(args, "--over")
over = None if over is None else float(over)
below = option(args, "--below")
below = None if below is None else float(below)
shards = os.path.join(args[0], "shards")
rows = []
for name in sorted(os.listdir(shards)):
    d = os.path.join(shards, name)
    # A finished shard only (one being lengthened has no merged frames, or, killed at the
    # wrong moment, stale ones).
    ck = os.path.join(d, "checkpoint.json")
    if not os.path.exists(os.path.join(d, "frames.npy")) or not json.load(open(ck)).get("complete"):
        continue
    if below is not None and json.load(open(os.path.join(d, "run.json")))["settings"]["ns_per_replica"] >= below:
        continue
    f = np.load(os.path.join(d, "frames.npy"), mmap_mode="r")
    r = np.load(os.path.join(d, "replica.npy"))
    ladders = int(r.max()) // 4 + 1
    per = np.array([shares(np.asarray(f[(r % 4 == 0) & (r // 4 == k)]), os.path.join(d, "topology.pdb"))
                    for k in range(ladders)])
    sem = per.std(0, ddof=1) / np.sqrt(ladders) if ladders > 1 else np.full(2, np.nan)
    rows.append((float(np.nanmax(sem)), name, per, sem))
rows.sort()
if over is not None:
    for s, name, _, _ in rows:
        if s > over:
            print(name)
    sys.exit(0)
for s, name, per, sem in rows:
    print(f"{name}  alphaR {' '.join(f'{v:.3f}' for v in per[:, 0])} (sem {sem[0]:.3f})"
          f"  alphaL {' '.join(f'{v:.3f}' for v in per[:, 1])} (sem {sem[1]:.3f})")
sems = np.array([s for s, *_ in rows])
if len(sems):
    print(f"{len(sems)} dipeptides; larger sem: median {np.median(sems):.3f}, "
          f"above 0.03: {(sems > 0.03).sum()}, above 0.05: {(sems > 0.05).sum()}")
