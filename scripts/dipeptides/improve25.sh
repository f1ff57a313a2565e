#!/usr/bin/env bash
# Self-improvement without MD (an experiment, issue 25): a transferable model samples a held-out
# dipeptide with its default sampler, is fine-tuned on those samples (the molecule's own energy
# is the only input; no MD of it), and samples again, ROUNDS times; then the improved model's
# default sampler on seeds 0-2, scored against the reference. Each round's samples use seed
# 100 + round, so the final seeds are fresh draws. Usage, in measure25.sh's directory (m25-ref/):
#   MODEL=run-dir ROUNDS=3 STEPS=200 improve25.sh KW TY ...
# TEMPERED=0.5 (ROUNDS=4 STEPS=150, out in improve25-tempered/): each round instead draws 4,000
# raw SNIS proposals and fine-tunes on them resampled by w^beta, beta the largest with an ESS of
# TEMPERED (temper25.py): the model moves toward q^(1-beta) p^beta, a tempered step at a time,
# rather than onto the few draws that the raw weights keep.
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
MODEL=${MODEL:?a transferable training run}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-200}
for s in "$@"; do
  pdb=$here/ref25/$s.pdb; out=improve25${TEMPERED:+-tempered}/$s; mkdir -p "$out"
  model=$MODEL
  t0=$(date +%s)
  for r in $(seq 1 "$ROUNDS"); do
    d=$out/data-$r; mkdir -p "$d"
    if [ -n "${TEMPERED:-}" ]; then
      [ -f "$out/samples-$r/summary.json" ] || $B sample --run "$model" --pdb "$pdb" --method snis \
        --no-truncate --n 4000 --seed $((200 + r)) --out "$out/samples-$r" > "$out/samples-$r.log" 2>&1
      [ -f "$d/beta.json" ] || ${PYTHON:-python3} "$here/temper25.py" "$out/samples-$r" "$d" "$TEMPERED" $r > "$d/beta.json"
    else
      [ -f "$out/samples-$r/summary.json" ] || $B sample --run "$model" --pdb "$pdb" --seed $((100 + r)) \
        --out "$out/samples-$r" > "$out/samples-$r.log" 2>&1
      cp "$out/samples-$r/samples.npy" "$d/frames.npy"
    fi
    # The samples as a one-molecule data set (frames at the model's temperature, its topology).
    cp "$pdb" "$d/topology.pdb"
    echo "{\"settings\": {\"system\": \"$s\", \"forcefield\": \"amber14-obc1\", \"temperature_k\": 310.0}}" > "$d/run.json"
    [ -f "$out/model-$r/latest.json" ] || $B train --init "$model" --data "$d" --steps "$STEPS" --lr 1e-4 \
      --checkpoint-secs 60 --out "$out/model-$r" > "$out/model-$r.log" 2>&1
    $B sample --run "$out/model-$r" --pdb "$pdb" --method snis --seed 0 --out "$out/snis-$r" > /dev/null 2>&1
    model=$out/model-$r
  done
  echo "$s: $ROUNDS rounds in $(( $(date +%s) - t0 )) s" > "$out/time.txt"
  for seed in 0 1 2; do
    o=$out/final-$seed
    [ -f $o/summary.json ] || $B sample --run "$model" --pdb "$pdb" --seed $seed --out $o > $o.log 2>&1
    [ -f $o-eval/metrics.json ] || $B eval --pdb "$pdb" --samples $o --reference m25-ref/$s.npy --out $o-eval > $o-eval.log 2>&1
  done
done
exit
}
