#!/usr/bin/env bash
# Issue 25 end to end, each step resumable (rerun the same command after a stop; finished steps
# are skipped): the training data (train_data.sh), its merge, the transferable model (the
# dipeptides preset, 20,000 steps, every rung of each ladder as training data, as aldp's
# `bgen run` recipe), the proposal's SNIS on the 12 held-out dipeptides (measure25.sh snis),
# then seeds 3 and 4 of the slow references (references.sh more). About 2.5 h of data and 3.3 h
# of training on the 2-core VM. Run from a work directory with BGEN set:
#   BGEN=path/to/bgen nohup nice -n 15 scripts/dipeptides/pipeline25.sh >> run.log 2>&1 &
# STEPS: training steps in place of the preset's 20,000 (the cosine schedule ends at them).
# With setsid (or from another login) it runs in an autogroup of its own, and nice then does
# nothing against other sessions' work: it takes a core from every timing beside it. Yield with
#   echo 19 > /proc/$(pgrep -f pipeline25.sh | head -1)/autogroup    (0 to share again)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
# A shard that fails (an unstable run, say) is left out of the merge, named, not fatal.
"$here/train_data.sh" || echo "pipeline25: some shards failed; merging the finished ones"
[ -f data388/dataset.json ] || $B dataset merge --run train-remd --out data388 --finished-only
if [ -f model388/latest.json ]; then
  $B train --data data388 --out model388 --resume --raised-rungs "${RAISED:-3}" --threads 2
else
  $B train --data data388 --out model388 --preset dipeptides --raised-rungs "${RAISED:-3}" --threads 2 \
    ${STEPS:+--steps $STEPS}
fi
venv=$here/../../.venv/bin/python
MODEL=model388 BGEN=$B PYTHON=${PYTHON:-$( [ -x "$venv" ] && echo "$venv" || echo python3 )} \
  "$here/measure25.sh" floor snis
"$here/references.sh" more
