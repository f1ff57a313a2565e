#!/usr/bin/env bash
# Issue 25: a look at a transferable model while it trains, without disturbing it. Copies RUN's
# latest checkpoint into probe-STEP/ (a run of its own, so that measure25.sh's skipping never
# mixes it up with the finished model), then scores the proposal alone (no weights):
#   - on held-out dipeptides (NAMES, default the hardest four: KW TY PW AD; 4,000 draws x 3
#     seeds, measure25.sh proposal) against their references;
#   - on training dipeptides whose pair sets residue 2's alphaR far from what each residue alone
#     gives (PAIRS: the X-W and K-aromatic ones; 2,000 draws, shrink25.sh) against their data;
# and prints additive25.py's table (each share beside the 41-number additive fit's) and
# basins25.py's largest basin errors into probe-STEP/probe.txt. About 2 minutes on 2 cores.
# Usage, in measure25.sh's directory (TRAIN_MD: the training MD run, default train-remd):
#   BGEN=path/to/bgen RUN=model388c DATA=data388c probe25.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUN=${RUN:?the training run to look at}
DATA=${DATA:?its merged data set}
venv=$here/../../.venv/bin/python
PY=${PYTHON:-$( [ -x "$venv" ] && echo "$venv" || echo python3 )}
ckpt=$("$PY" -c "import json; print(json.load(open('$RUN/latest.json'))['checkpoint'])")
step=$((10#${ckpt#ckpt-}))
snap=probe-$step
if [ ! -f "$snap/latest.json" ]; then
  # The checkpoint first, latest.json last: a copy stopped halfway is redone.
  rm -rf "$snap" && mkdir -p "$snap"
  cp -r "$RUN/$ckpt" "$RUN/run.json" "$snap/"
  echo "{\"checkpoint\": \"$ckpt\"}" > "$snap/latest.json"
fi
NAMES=${NAMES:-KW TY PW AD} MODEL=$snap PYTHON=$PY "$here/measure25.sh" proposal
MODEL=$snap TRAIN_MD=${TRAIN_MD:-train-remd} "$here/shrink25.sh" \
  ${PAIRS:-QW LW MW GW SW HW RW NW EW KF KY}
{
  echo "# $RUN at step $step (its EMA weights), the proposal alone"
  "$PY" "$here/additive25.py" "$DATA/dataset.json" "m25-$snap" --train-proposals "shrink25-$snap"
  "$PY" "$here/basins25.py" "m25-$snap"
} > "$snap/probe.txt"
cat "$snap/probe.txt"
