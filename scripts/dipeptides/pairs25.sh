#!/usr/bin/env bash
# Issue 25: which family learns how two residues act together. Both models train from scratch,
# for about the same wall time, on the same 20 training dipeptides (pairs25.txt: QW, KY, RW, KF,
# whose alphaR the residues' added preferences miss by 0.1-0.2, IN and DC, and 14 others), with
# the replica-exchange recipe of train_data.sh; then each draws 2,000 proposals of the six named
# ones (shrink25.sh) and pairs25.py sets their basins beside their own data's.
#   TarFlow: the dipeptides preset (128 wide, 4 x 2), temperature label, 3 raised rungs;
#   ArBG: the small preset (64 wide x 4 layers, 256 bins), the same data options.
# Each step is skipped when done, and training resumes after a stop. Run from a work directory:
#   BGEN=path/to/bgen TF_STEPS=3000 ARBG_STEPS=3000 scripts/dipeptides/pairs25.sh
# TF_STEPS, ARBG_STEPS: each model's steps (its cosine schedule ends there); choose them for
# the same wall time from each family's step time (the logs print it). Then:
#   python3 pairs25.py pairs-remd shrink25-pairs-tarflow shrink25-pairs-arbg
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
$B md --sequences-file "$here/pairs25.txt" --out pairs-remd --ns 0.25 \
  --temperatures 310:450:4 --replicas 16 --save-every-ps 1 --equilibrate-ps 50 --seed 1 \
  --jobs 2 --threads 2
[ -f pairs-data/dataset.json ] || $B dataset merge --run pairs-remd --out pairs-data
train() { # run directory, then the options of a fresh run
  local out=$1; shift
  if [ -f "$out/latest.json" ]; then
    $B train --data pairs-data --out "$out" --resume --threads 2 >> "$out.log" 2>&1
  else
    $B train --data pairs-data --out "$out" "$@" --threads 2 >> "$out.log" 2>&1
  fi
}
train pairs-tarflow --preset dipeptides --raised-rungs 3 --temperature-label --steps "${TF_STEPS:?}"
train pairs-arbg --model arbg --preset small --raised-rungs 3 --temperature-label \
  --steps "${ARBG_STEPS:?}"
for m in pairs-tarflow pairs-arbg; do
  BGEN=$B MODEL=$m TRAIN_MD=pairs-remd "$here/shrink25.sh" QW KY RW KF IN DC
done
exit
}
