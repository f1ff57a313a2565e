#!/usr/bin/env bash
# Issue 25's long references for the held-out dipeptides (held_out_25.txt): replica exchange,
# 4 rungs 310-450 K, 10 ns per rung, from two seeds (seed 1 and seed 2 in ref25-seed1/2), a frame
# per ps after 100 ps; bgen md's default dynamics (mixed precision, 2 fs, 3 Da hydrogens). On the
# 2-core VM a shard takes 25-35 min with two running (one core each, other work beside them):
# about 3 hours per seed for the 12. Rerun the same command to resume after a stop: finished shards are skipped,
# interrupted ones continue from their checkpoint. NS=... shortens it for a trial; SEEDS=1 runs
# one seed.
# Then `references.sh floor` scores each dipeptide's seed-1 310 K rung against seed 2's (its floor),
# and `references.sh keep` thins the finished ones into scripts/dipeptides/ref25/ (committed).
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
NS=${NS:-10}
# `references.sh more`: seeds 3 and 4 of the dipeptides whose seeds 1 and 2 differ by 0.03 in a
# basin (held_out_slow.txt: PW, TF, WE), so that their reference pools 40 ns and its floor is
# seeds 1+2 against 3+4.
LIST="$here/held_out_25.txt"
if [ "${1:-run}" = more ]; then
  LIST="$here/held_out_slow.txt"; SEEDS="3 4"; set -- run
fi
if [ "${1:-run}" = run ]; then
  for seed in ${SEEDS:-1 2}; do
    $B md --sequences-file "$LIST" --out ref25-seed$seed --ns "$NS" \
      --temperatures 310:450:4 --save-every-ps 1 --equilibrate-ps 100 --seed $seed \
      --jobs 2 --threads 2
  done
  exit 0
fi
PY=${PYTHON:-python3}
if [ "$1" = keep ]; then
  # The finished references, thinned to a frame per 10 ps of the 310 K rung (1,000 frames, about
  # 0.5 MB per dipeptide and seed), into the repository: a lost machine loses no reference.
  # Seeds 3 and 4 (`more`) where they were run.
  keep="$here/ref25"; mkdir -p "$keep"
  for seed in 1 2 3 4; do
    [ -d ref25-seed$seed/shards ] || continue
    for d in ref25-seed$seed/shards/*/; do
      s=$(basename "$d"); [ -f "$d/frames.npy" ] || continue
      $PY -c "
import numpy as np; x=np.load('$d/frames.npy'); r=np.load('$d/replica.npy')
np.save('$keep/$s-seed$seed.npy', np.ascontiguousarray(x[r==0][::10], dtype=np.float32))"
      cp "$d/topology.pdb" "$keep/$s.pdb"
    done
  done
  exit 0
fi
mkdir -p ref25-floor
for s in $(grep -v "^#" "$here/held_out_25.txt"); do
  for seed in 1 2; do
    $PY -c "
import numpy as np; d='ref25-seed$seed/shards/$s'
x=np.load(d+'/frames.npy'); r=np.load(d+'/replica.npy'); np.save('ref25-floor/$s-$seed.npy', x[r==0])"
  done
  $B eval --pdb ref25-seed1/shards/$s/topology.pdb --samples ref25-floor/$s-1.npy \
    --reference ref25-floor/$s-2.npy --out ref25-floor/$s > ref25-floor/$s.log 2>&1
done
exit
}
