#!/usr/bin/env bash
# How the FIRST shipped transferable dipeptide model (until 2026-12-04; the current one is made by
# pipeline25.sh with STEPS=8000, see models/README.md) was made, on
# a 2-core CPU VM; run from an empty working directory: scripts/dipeptides/make_model.sh
#   1. MD of the 100 training dipeptides (train.txt): zwitterions, amber14-obc1, 310 K, 1 ns each
#      after 50 ps of equilibration, a frame per ps (63 min on 2 cores).
#   2. A 400-step pilot on 95 of them (TG, TK, TL, TP, TT held out to try zero-shot sampling).
#   3. 900 more steps on all 100 from the pilot's weights (a fresh learning-rate schedule).
#   4. MD of the 5 held-out dipeptides (held_out.txt) as references: replica exchange 310-450 K,
#      4 rungs x 5 ns; and 1 ns at 310 K each for the single-molecule models of compare.sh.
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
$B md --sequences-file "$here/train.txt" --out train-md --ns 1 --save-every-ps 1 --equilibrate-ps 50 --jobs 2 --threads 1
$B dataset merge --run train-md --out pilot-data --held-out TG,TK,TL,TP,TT
$B train --data pilot-data --out pilot-model --preset dipeptides --steps 400 --threads 2
$B dataset merge --run train-md --out data-100
$B train --data data-100 --init pilot-model --out model-100 --steps 900 --threads 2
$B md --sequences-file "$here/held_out.txt" --out ref-md --ns 5 --temperatures 310:450:4 --save-every-ps 1 --equilibrate-ps 100 --jobs 2 --threads 2
$B md --sequences-file "$here/held_out.txt" --out own-md --ns 1 --save-every-ps 1 --equilibrate-ps 50 --seed 7 --jobs 2 --threads 1
echo "model-100 was the first shipped model; scripts/dipeptides/compare.sh measures it"
exit
}
