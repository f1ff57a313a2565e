#!/usr/bin/env bash
# Issue 17's measurement of the transferable dipeptide model, from make_model.sh's directory:
# on each held-out dipeptide, scored against the 310 K rung of its replica-exchange MD (5 ns):
#   floor:    the first half of that rung against the second (the reference's own noise);
#   transfer: the transferable model (MODEL, default model-100), zero-shot: SNIS of 5,000
#             (seeds 0, 1, 2) and SMC of 256 particles (seeds 0, 1);
#   single:   a single-molecule TarFlow (small preset) trained on the dipeptide's own 1 ns MD for
#             3,000 steps (half the transferable model's training time; KW only);
#   early:    the same stopped at 500 steps (1 ns overfits a single-molecule model well before);
#   md:       plain MD from the built structure for as many energy evaluations as the SMC used;
#   mdwall:   plain MD for about the SMC's wall time (9 ns on one core; KW only);
#   many:     the transferable SMC with 1,024 particles (seeds 0, 1; AD only).
# Then readme_table.py prints the tables. Usage: compare.sh [floor|transfer|single|early|md ...]
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${BGEN:-bgen}
PY=${PYTHON:-python3}
MODEL=${MODEL:-model-100}
names=$(grep -v "^#" "$here/held_out.txt")
mkdir -p cmp
ev() { $B eval --pdb ref-md/shards/$1/topology.pdb --samples $2 --reference cmp/ref-$1.npy --out $2-eval > $2-eval.log 2>&1; }
for what in ${*:-floor transfer early md single mdwall many}; do
  sel=$names; case $what in single|mdwall) sel=KW;; many) sel=AD;; esac
  for s in $sel; do
    pdb=ref-md/shards/$s/topology.pdb
    case $what in
      floor)
        $PY -c "
import numpy as np; x=np.load('ref-md/shards/$s/frames.npy'); r=np.load('ref-md/shards/$s/replica.npy')
x=x[r==0]; h=len(x)//2
np.save('cmp/ref-$s.npy', x); np.save('cmp/floor-$s-a.npy', x[:h]); np.save('cmp/floor-$s-b.npy', x[h:])"
        $B eval --pdb $pdb --samples cmp/floor-$s-a.npy --reference cmp/floor-$s-b.npy --out cmp/floor-$s > cmp/floor-$s.log 2>&1
        ;;
      transfer|single|early)
        run=$MODEL; args="--pdb $pdb"
        if [ $what != transfer ]; then
          run=cmp/$what-$s; steps=3000; [ $what = early ] && steps=500
          [ -f $run/latest.json ] || /usr/bin/time -f "%e s wall, %U s user" $B train --data own-md/shards/$s \
              --out $run --preset small --steps $steps --threads 2 --checkpoint-secs 30 > $run.log 2>&1
          args=""
        fi
        for seed in 0 1 2; do
          o=cmp/$what-$s-snis-$seed
          [ -f $o/summary.json ] || $B sample --run $run $args --method snis --n 5000 --seed $seed --threads 2 --out $o > $o.log 2>&1
          [ -f $o-eval/metrics.json ] || ev $s $o
        done
        smc_seeds="0 1"; [ $what = single ] && smc_seeds=0
        for seed in $smc_seeds; do
          o=cmp/$what-$s-smc-$seed
          [ -f $o/summary.json ] || $B sample --run $run $args --method smc --n 256 --seed $seed --threads 2 --out $o > $o.log 2>&1
          [ -f $o-eval/metrics.json ] || ev $s $o
        done
        ;;
      md)
        evals=$($PY -c "import json; print(json.load(open('cmp/transfer-$s-smc-0/summary.json'))['energy_evaluations'])")
        o=cmp/md-$s
        [ -f $o/frames.npy ] || $B md --pdb $pdb --forcefield amber14-obc1 --ns $($PY -c "print($evals / 1e6)") \
            --save-every-ps 0.1 --equilibrate-ps 0 --seed 3 --threads 2 --out $o > $o.log 2>&1
        $PY -c "import numpy as np; np.save('$o.npy', np.load('$o/frames.npy'))"
        ev $s $o
        ;;
      many)
        for seed in 0 1; do
          o=cmp/transfer1024-$s-smc-$seed
          [ -f $o/summary.json ] || $B sample --run $MODEL --pdb $pdb --method smc --n 1024 --seed $seed --threads 2 --out $o > $o.log 2>&1
          [ -f $o-eval/metrics.json ] || ev $s $o
        done
        ;;
      mdwall)
        o=cmp/mdwall-$s
        [ -f $o/frames.npy ] || $B md --pdb $pdb --forcefield amber14-obc1 --ns 9 --save-every-ps 1 \
            --equilibrate-ps 0 --seed 5 --threads 1 --out $o > $o.log 2>&1
        $PY -c "import numpy as np; np.save('$o.npy', np.load('$o/frames.npy'))"
        ev $s $o
        ;;
    esac
  done
done
$PY "$here/readme_table.py" "$here/held_out.txt" # docs/results.md's two tables
exit
}
