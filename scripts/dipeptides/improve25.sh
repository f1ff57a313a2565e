#!/usr/bin/env bash
# Self-improvement without MD (an experiment, issue 25): a transferable model samples a held-out
# dipeptide with its default sampler, is fine-tuned on those samples (the molecule's own energy
# is the only input; no MD of it), and samples again, ROUNDS times; then the improved model's
# default sampler on seeds 0-2, scored against the reference. Each round's samples use seed
# 100 + round, so the final seeds are fresh draws. Usage, in measure25.sh's directory (m25-ref/):
#   MODEL=run-dir ROUNDS=3 STEPS=200 improve25.sh KW TY ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
MODEL=${MODEL:?a transferable training run}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-200}
for s in "$@"; do
  pdb=$here/ref25/$s.pdb; out=improve25/$s; mkdir -p "$out"
  model=$MODEL
  t0=$(date +%s)
  for r in $(seq 1 "$ROUNDS"); do
    [ -f "$out/samples-$r/summary.json" ] || $B sample --run "$model" --pdb "$pdb" --seed $((100 + r)) \
      --out "$out/samples-$r" > "$out/samples-$r.log" 2>&1
    # The samples as a one-molecule data set (frames at the model's temperature, its topology).
    d=$out/data-$r; mkdir -p "$d"
    cp "$out/samples-$r/samples.npy" "$d/frames.npy"; cp "$pdb" "$d/topology.pdb"
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
