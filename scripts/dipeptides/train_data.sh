#!/usr/bin/env bash
# Issue 25's training data: replica exchange for each of the 388 training dipeptides
# (train_388.txt; never the 12 of held_out_25.txt), zwitterions, amber14-obc1, 4 rungs over
# 310-450 K, 1 ns per rung after 50 ps, a frame per ps; the defaults of `bgen md` otherwise
# (2 fs steps, 3 Da hydrogens, mixed precision). About 1.5 core-minutes per dipeptide on the
# 2-core VM. Rerun the same command to resume after a stop (finished shards are skipped,
# interrupted ones continue from their checkpoint). Run from the data directory:
#   BGEN=path/to/bgen scripts/dipeptides/train_data.sh        -> train-remd/shards/XY/
# (queue.sh runs it between the references of seed 1 and of seed 2.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
$B md --sequences-file "$here/train_388.txt" --out train-remd --ns "${NS:-1}" \
  --temperatures 310:450:4 --save-every-ps 1 --equilibrate-ps 50 --seed 1 --jobs 2 --threads 2
