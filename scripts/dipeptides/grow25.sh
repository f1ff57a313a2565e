#!/usr/bin/env bash
# Issue 25: does capacity teach the pairs? Grows INIT (default model388c, 4 flow blocks) to
# BLOCKS (default 6) with `bgen train --grow-blocks` (the new blocks start as the identity) and
# fine-tunes it over the whole data set DATA (default data388c) as the sequence-label control
# was (lr LR, default 5e-4; STEPS, default 8,000; no oversampling), into OUT (default model388g;
# resumed if it exists), then probes the latest checkpoint (probe25.sh).
# Usage, in measure25.sh's directory: BGEN=path/to/bgen grow25.sh
# About 0.63 s a step for 6 blocks on the 2 cores (4 blocks: 0.46 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
INIT=${INIT:-model388c}
DATA=${DATA:-data388c}
OUT=${OUT:-model388g}
if [ -f "$OUT/latest.json" ]; then
  $B train --data "$DATA" --out "$OUT" --resume --threads 2 --checkpoint-secs 600 >> "$OUT.log" 2>&1
else
  $B train --init "$INIT" --grow-blocks "${BLOCKS:-6}" --data "$DATA" --out "$OUT" --raised-rungs 3 \
    --threads 2 --steps "${STEPS:-8000}" --lr "${LR:-5e-4}" --checkpoint-secs 600 > "$OUT.log" 2>&1
fi
RUN=$OUT DATA=$DATA BGEN=$B "$here/probe25.sh"
