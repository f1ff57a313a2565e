#!/usr/bin/env bash
# Issue 25 end to end, each step resumable (rerun the same command after a stop; finished steps
# are skipped):
#   1. the training data (train_data.sh: 388 dipeptides x 4 ladders x 0.25 ns, about 2.2 h);
#   2. CONVERGE=1 (default): converge25.sh lengthens the shards whose 4 ladders disagree on a
#      basin by more than 0.05 (standard error), in rounds to ROUNDS ns ("1 2 4");
#   3. the merge (DATA, default data388/);
#   4. the transferable model (MODEL, default model388/): the dipeptides preset, every rung of each ladder as
#      training data (--raised-rungs 3), LABEL=1 (default) conditions it on the rung's
#      temperature; SEQUENCE=1 also gives every token the whole sequence (--sequence-label);
#      INIT=DIR starts from a trained model's weights (a fresh schedule); STEPS
#      ends the cosine schedule (the preset's 20,000 if unset), LR sets its peak (the preset's or
#      INIT's if unset); a checkpoint every 5 minutes;
#   5. its measurement on the 12 held-out dipeptides (MEASURE: measure25.sh's steps, default
#      "floor snis proposal zero matched md", about an hour), then table25.py, vs_md25.py, basins25.py.
# The model shipped until this recipe (models/README.md) was CONVERGE=0 LABEL=0 STEPS=8000, no
# INIT. Give another recipe its own DATA and MODEL directories. Run from a work directory with BGEN set:
#   BGEN=path/to/bgen nohup nice -n 15 scripts/dipeptides/pipeline25.sh >> run.log 2>&1 &
# With setsid (or from another login) it runs in an autogroup of its own, and nice then does
# nothing against other sessions' work: it takes a core from every timing beside it. Yield with
#   echo 19 > /proc/$(pgrep -f pipeline25.sh | head -1)/autogroup    (0 to share again)
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
venv=$here/../../.venv/bin/python
PY=${PYTHON:-$( [ -x "$venv" ] && echo "$venv" || echo python3 )}
# A shard that fails (an unstable run, say) is left out of the merge, named, not fatal.
"$here/train_data.sh" || echo "pipeline25: some shards failed; merging the finished ones"
if [ "${CONVERGE:-1}" = 1 ]; then
  BGEN=$B PYTHON=$PY ROUNDS=${ROUNDS:-1 2 4} "$here/converge25.sh" train-remd ||
    echo "pipeline25: some shards failed to lengthen; merging the finished ones"
fi
# The data set and the model are named by recipe: a model resumes only on the data it began on.
data=${DATA:-data388}; model=${MODEL:-model388}
[ -f $data/dataset.json ] || $B dataset merge --run train-remd --out $data --finished-only
if [ -f $model/latest.json ]; then
  $B train --data $data --out $model --resume --threads 2 --checkpoint-secs 300
else
  start=(--preset dipeptides); [ -n "${INIT:-}" ] && start=(--init "$INIT")
  label=(); [ "${LABEL:-1}" = 1 ] && label=(--temperature-label)
  [ "${SEQUENCE:-0}" = 1 ] && label+=(--sequence-label)
  $B train --data $data --out $model --raised-rungs "${RAISED:-3}" --threads 2 \
    --checkpoint-secs 300 "${start[@]}" "${label[@]}" ${STEPS:+--steps $STEPS} ${LR:+--lr $LR}
fi
# shellcheck disable=SC2086  # MEASURE is a list of steps
MODEL=$model BGEN=$B PYTHON=$PY "$here/measure25.sh" ${MEASURE:-floor snis proposal zero matched md}
"$PY" "$here/table25.py" "m25-$(basename "$model")"
"$PY" "$here/vs_md25.py" . "m25-$(basename "$model")"
"$PY" "$here/basins25.py" "m25-$(basename "$model")"
exit
}
