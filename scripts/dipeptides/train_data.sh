#!/usr/bin/env bash
# Issue 25's training data: replica exchange for each of the 388 training dipeptides
# (train_388.txt; never the 12 of held_out_25.txt), zwitterions, amber14-obc1: 4 ladders side by
# side of 4 rungs over 310-450 K (16 replicas, which step together in the 16 f32 lanes of an
# AVX-512 core), 0.25 ns per replica after 50 ps, a frame per ps: 1,000 frames at 310 K per
# dipeptide from 4 independent walkers, as the earlier recipe (one ladder, 1 ns per rung) gave
# from one, in 0.45 of its time (KW, one thread: 12.4 s for 16 x 0.1 ns against 27.5 s for
# 4 x 0.4 ns). The defaults of `bgen md` otherwise (2 fs steps, 3 Da hydrogens, mixed
# precision). Rerun the same command to resume after a stop (finished shards are skipped,
# interrupted ones continue from their checkpoint). Run from the data directory:
#   BGEN=path/to/bgen scripts/dipeptides/train_data.sh        -> train-remd/shards/XY/
# (queue.sh runs it after the references of seeds 1 and 2, before seeds 3 and 4.)
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
$B md --sequences-file "$here/train_388.txt" --out train-remd --ns "${NS:-0.25}" \
  --temperatures 310:450:4 --replicas 16 --save-every-ps 1 --equilibrate-ps 50 --seed 1 \
  --jobs "${JOBS:-2}" --threads "${JOBS:-2}"
exit
}
