#!/usr/bin/env bash
# Issue 25: lengthens the training MD of the dipeptides whose replica-exchange ladders disagree,
# round by round, until they agree. After train_data.sh (0.25 ns per replica), each round lists
# the shards of RUN whose alphaR or alphaL standard error over the 4 ladders is above SEM
# (ladders25.py --over) and lengthens just those to the round's ns (bgen md continues each
# from its last state, as if made that long). Resumable: rerun after a stop (each round's list
# is kept in RUN.over-NS.txt). Run from the data
# directory, then merge again (dataset.json records the frame counts):
#   BGEN=path/to/bgen PYTHON=.venv/bin/python scripts/dipeptides/converge25.sh train-remd
# SEM (default 0.05), ROUNDS (the rounds' lengths, ns, default "1 2 4": a shard lengthened
# in one round goes on from there in the next).
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
run=${1:?a many-peptide run directory (train-remd)}
for ns in ${ROUNDS:-1 2 4}; do
  # A round's list is made once, when the round before has finished (a rerun resumes it).
  list=$run.over-$ns.txt
  if [ ! -f "$list" ]; then
    "${PYTHON:-python3}" "$here/ladders25.py" "$run" --over "${SEM:-0.05}" --below "$ns" > "$list.tmp"
    mv "$list.tmp" "$list"
  fi
  [ -s "$list" ] || continue
  echo "converge25: $(wc -l < "$list") dipeptides to $ns ns: $(tr '\n' ' ' < "$list")"
  $B md --sequences-file "$list" --out "$run" --ns "$ns" \
    --temperatures 310:450:4 --replicas 16 --save-every-ps 1 --equilibrate-ps 50 --seed 1 \
    --jobs "${JOBS:-2}" --threads "${JOBS:-2}"
done
"${PYTHON:-python3}" "$here/ladders25.py" "$run" | tail -1
exit
}
