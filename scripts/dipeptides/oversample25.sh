#!/usr/bin/env bash
# Issue 25: can the transferable model fit the pairs whose basins are not what their residues
# give, if they get more of the gradient? Fine-tunes INIT (default model388c) over the whole data
# set DATA (default data388c) with those pairs oversampled (oversample25.py's file), for STEPS
# (default 10,000) at LR (default 5e-4), into OUT (default model388o; resumed if it exists), then
# probes it (probe25.sh: the proposal on the hardest held-out dipeptides, on the worst-fitted
# pairs and on pairs it does not oversample: SW, HW, RW, EW).
# Usage, in measure25.sh's directory: BGEN=path/to/bgen oversample25.sh
# About 80 minutes of training on the 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
INIT=${INIT:-model388c}
DATA=${DATA:-data388c}
OUT=${OUT:-model388o}
venv=$here/../../.venv/bin/python
PY=${PYTHON:-$( [ -x "$venv" ] && echo "$venv" || echo python3 )}
[ -f oversample25.txt ] || "$PY" "$here/oversample25.py" "$DATA/dataset.json" oversample25.txt
if [ -f "$OUT/latest.json" ]; then
  $B train --data "$DATA" --out "$OUT" --resume --threads 2 --checkpoint-secs 600 >> "$OUT.log" 2>&1
else
  $B train --init "$INIT" --data "$DATA" --out "$OUT" --raised-rungs 3 --threads 2 \
    --oversample oversample25.txt --steps "${STEPS:-10000}" --lr "${LR:-5e-4}" \
    --checkpoint-secs 600 > "$OUT.log" 2>&1
fi
RUN=$OUT DATA=$DATA BGEN=$B "$here/probe25.sh"
