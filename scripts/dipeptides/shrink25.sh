#!/usr/bin/env bash
# Issue 25: how well a transferable model fits dipeptides it trained on. Draws 2,000 proposals of
# MODEL for each named training dipeptide (a shard of the training MD, TRAIN_MD/shards/NAME) into
# shrink25-MODEL/NAME; then additive25.py --train-proposals shrink25-MODEL sets each one's basins
# beside its own data's. Usage, in measure25.sh's directory:
#   MODEL=run-dir TRAIN_MD=train-remd shrink25.sh QW KY RW KF IN DC
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -eu
B=${BGEN:-bgen}
MODEL=${MODEL:?a transferable training run}
out=shrink25-$(basename "$MODEL")
for s in "$@"; do
  o=$out/$s; mkdir -p "$out"
  [ -f $o/summary.json ] || $B sample --run "$MODEL" --pdb "${TRAIN_MD:?}/shards/$s/topology.pdb" \
    --method proposal --n 2000 --out $o > $o.log 2>&1
done
exit
}
