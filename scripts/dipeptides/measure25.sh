#!/usr/bin/env bash
# Issue 25's measurement of a transferable model on the 12 held-out dipeptides, against the
# committed references (ref25/: each seed's 310 K rung, a frame per 10 ps; the reference is all
# seeds pooled, written to m25-ref/). MODEL: a training run (default: the shipped
# `dipeptides`). Every step is skipped when its result exists; rerun to resume.
#   floor:  seed 2's 310 K rung scored against seed 1's (the reference's own noise; seeds 3+4
#           against 1+2 where `references.sh more` ran them);
#   snis:   SNIS of 10,000 proposals, seed 0, scored against the pooled reference (minutes);
#           its summary's pareto_k is the weights' tail (pareto25.py tabulates it);
#   proposal: the proposal alone (no weights), 4,000 draws, seeds 0, 1, 2, scored against the
#           pooled reference: its basins against the reweighted ones (basins25.py);
#   zero:   `bgen sample` with its defaults (the model's default sampler), seeds 0, 1, 2, scored
#           against the pooled reference, with the sampler's wall time;
#   matched: the zero-shot and proposal runs' E-W2 and T-W2 at the floor's sizes, against the
#           floor's reference half (what compares with the floor: see the step; seconds);
#   md:     bgen's own plain MD from the built structure and its convergence curve (four
#           prefixes per doubling): REPLICAS_MD (32: 16 per core fill the AVX-512
#           f32 lanes: KW 15 ns per minute against 2 replicas' 8.9) x NS_MD ns (0.6) on the 2 cores;
#           NS_MD=1.2 lengthens a finished run (md25-dense/: NE AD HP TY PW HF DY WE).
# PYTHON: a Python with numpy (default python3; the repository's .venv has one). BGEN: the bgen
# binary (default `bgen` on PATH; a checkout's is target/release/bgen). Each run's output goes
# to its .log beside it: a missing binary shows as "-" rows in the table. Then
#   python3 scripts/dipeptides/table25.py m25-MODEL; vs_md25.py . m25-MODEL
# Usage: measure25.sh [floor|snis|proposal|zero|matched|md ...] (default: floor zero matched md)
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
command -v "$B" > /dev/null || { echo "measure25.sh: no bgen at '$B' (set BGEN)" >&2; exit 1; }
MODEL=${MODEL:-dipeptides}
ns_given=${NS_MD:-}
NS_MD=${NS_MD:-0.6}
REPLICAS_MD=${REPLICAS_MD:-32}
# SAMPLE: extra `bgen sample` options for the zero-shot runs (a sampler budget, say), measured
# apart in m25-MODEL-TAG.
SAMPLE=${SAMPLE:-}
out=m25-$(basename "$MODEL")${TAG:+-$TAG}
[ -z "$SAMPLE" ] || [ -n "${TAG:-}" ] || { echo "measure25.sh: SAMPLE needs a TAG" >&2; exit 1; }
mkdir -p "$out"
names=${NAMES:-$(grep -v "^#" "$here/held_out_25.txt")}
# The halves of the pooled reference that the floor scores against each other: a (as samples)
# = seed 2, b (as reference) = seed 1; where seeds 3 and 4 were run (references.sh more), 3+4
# against 1+2.
halves() {
  mkdir -p m25-floor
  a=$here/ref25/$1-seed2.npy; b=$here/ref25/$1-seed1.npy
  if [ -f $here/ref25/$1-seed4.npy ]; then
    a=m25-floor/$1-34.npy; b=m25-floor/$1-12.npy
    [ -f $b ] || ${PYTHON:-python3} -c "import numpy as np
np.save('$a', np.concatenate([np.load('$here/ref25/$1-seed3.npy'), np.load('$here/ref25/$1-seed4.npy')]))
np.save('$b', np.concatenate([np.load('$here/ref25/$1-seed1.npy'), np.load('$here/ref25/$1-seed2.npy')]))"
  fi
}
run_arg() { if [ -d "$MODEL" ]; then echo "--run $MODEL"; else echo "--system $MODEL"; fi; }
for what in ${*:-floor zero matched md}; do
  for s in $names; do
    pdb=$here/ref25/$s.pdb; ref=m25-ref/$s.npy; mkdir -p m25-ref
    [ -f $ref ] || ${PYTHON:-python3} -c "import numpy as np, glob
np.save('$ref', np.concatenate([np.load(f) for f in sorted(glob.glob('$here/ref25/$s-seed*.npy'))]))"
    case $what in
      floor)
        halves $s
        o=m25-floor/$s
        [ -f $o/metrics.json ] || $B eval --pdb $pdb --samples $a --reference $b --out $o > $o.log 2>&1
        ;;
      matched)
        # E-W2 and T-W2 at the floor's sizes. W2 between finite samples grows as they shrink
        # (1,000 frames against 1,000 score about twice 4,000 against 2,000 of the same
        # distribution), so a score against the pooled reference does not compare with the
        # floor. Each run's samples (zero-shot and proposal, unweighted) are cut into disjoint
        # subsets the size of the floor's samples (strided), each scored against the floor's
        # reference half; m25.py averages them. An exact sampler scores the floor on average.
        halves $s
        for k in 0 1 2 q0 q1 q2; do
          o=$out/$s-$k; m=$out/$s-$k-matched
          [ -f $o/samples.npy ] && [ ! -f $m/done ] || continue
          mkdir -p $m
          n=$(${PYTHON:-python3} -c "import numpy as np, os, sys
if os.path.exists('$o/log_weights.npy'): sys.exit('$o is weighted: not cut into subsets')
x, n = np.load('$o/samples.npy'), len(np.load('$a', mmap_mode='r'))
for j in range(len(x) // n): np.save(f'$m/sub{j}.npy', x[j::len(x) // n][:n])
print(len(x) // n)") || continue
          for j in $(seq 0 $((n - 1))); do
            $B eval --pdb $pdb --samples $m/sub$j.npy --reference $b --out $m/sub$j > $m/sub$j.log 2>&1
          done
          rm -f $m/sub*.npy; touch $m/done
        done
        ;;
      snis)
        # The proposal's quality at a glance: SNIS of 10,000 proposals, seed 0 (minutes).
        o=$out/$s-snis
        [ -f $o/summary.json ] || $B sample $(run_arg) --pdb $pdb --method snis --seed 0 --out $o > $o.log 2>&1
        [ -f $o-eval/metrics.json ] || $B eval --pdb $pdb --samples $o --reference $ref \
          --out $o-eval > $o-eval.log 2>&1
        ;;
      proposal)
        for seed in 0 1 2; do
          o=$out/$s-q$seed
          [ -f $o/summary.json ] || $B sample $(run_arg) --pdb $pdb --method proposal --n 4000 \
            --seed $seed --out $o > $o.log 2>&1
          [ -f $o-eval/metrics.json ] || $B eval --pdb $pdb --samples $o --reference $ref \
            --out $o-eval > $o-eval.log 2>&1
        done
        ;;
      zero)
        for seed in 0 1 2; do
          o=$out/$s-$seed
          [ -f $o/summary.json ] || $B sample $(run_arg) --pdb $pdb --seed $seed $SAMPLE --out $o > $o.log 2>&1
          [ -f $o-eval/metrics.json ] || $B eval --pdb $pdb --samples $o --reference $ref \
            --out $o-eval > $o-eval.log 2>&1
        done
        ;;
      md)
        o=m25-md/$s; mkdir -p m25-md
        if [ ! -f $o/run.json ]; then
          $B md --pdb $pdb --ns $NS_MD --replicas $REPLICAS_MD --seed 3 --out $o > $o.log 2>&1
        else
          # Finishes an interrupted run, or, with NS_MD given, lengthens a finished one to it
          # (as if run that long from the start; a no-op when it already is).
          $B md --resume ${ns_given:+--ns $ns_given} --out $o >> $o.log 2>&1
        fi
        # Four prefixes per doubling (MD of a sampler's wall time is at most 19% shorter);
        # vs_md25.py reads where MD reaches each seed's scores off the points, and --reach
        # also marks seed 0's on the plot.
        reach=$out/$s-0-eval/metrics.json
        $B eval --pdb $pdb --samples $o --reference $ref --curve 41 --curve-ratio 1.189207115 \
          $( [ -f $reach ] && echo "--reach $reach" ) --out $out/$s-md-curve > $out/$s-md-curve.log 2>&1
        ;;
    esac
  done
done
exit
}
