#!/usr/bin/env bash
# Issue 25: does fitting the training pairs related to a held-out dipeptide bring its basins?
# Fine-tunes INIT (default model388c) on a data set of just the related training pairs (for KW:
# the K-X and X-W dipeptides of the training MD, PAIRS), for STEPS steps (default 1,200: about
# 19 epochs of those 18 molecules' 16,200 training frames), then draws 3,000 proposals of the
# held-out molecule (HELD, default KW, scored against m25-ref/HELD.npy) and of some of the pairs
# (scored against their own training MD), and prints residue 2's basins beside the reference's.
# One molecule alone as the data (PAIRS=QW) is the single-molecule fine-tune.
# Usage, in measure25.sh's directory (TRAIN_MD: the training MD run, default train-remd):
#   BGEN=path/to/bgen related25.sh
# Writes related25-HELD/ (data, run, samples, evaluations); about 15 minutes on 2 cores.
# Braced and ended by exit: bash reads it whole before it runs.
{
set -eu
B=${BGEN:-bgen}
here=$(cd "$(dirname "$0")" && pwd)
INIT=${INIT:-model388c}
HELD=${HELD:-KW}
TRAIN_MD=${TRAIN_MD:-train-remd}
PAIRS=${PAIRS:-KY SW KL KF QW WW GW YW HW KA NW EW FW LW MW VW RW AW}
SCORE=${SCORE:-QW KF KY LW}
STEPS=${STEPS:-1200}
out=related25-$HELD
mkdir -p "$out/md/shards"
# A many-peptide directory of just the related shards (links), merged with nothing held out.
python3 - "$TRAIN_MD/shards.json" "$out/md/shards.json" $PAIRS <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
keep = set(sys.argv[3:])
d["shards"] = [s for s in d["shards"] if s["name"] in keep]
json.dump(d, open(sys.argv[2], "w"), indent=2)
EOF
for s in $PAIRS; do
  [ -e "$out/md/shards/$s" ] || ln -s "$(cd "$TRAIN_MD/shards/$s" && pwd)" "$out/md/shards/$s"
done
[ -f "$out/data/dataset.json" ] || $B dataset merge --run "$out/md" --out "$out/data" --held-out-count 0
if [ -f "$out/run/latest.json" ]; then
  $B train --data "$out/data" --out "$out/run" --resume --checkpoint-secs 120 >> "$out/train.log" 2>&1
else
  $B train --init "$INIT" --data "$out/data" --out "$out/run" --steps "$STEPS" \
    --checkpoint-secs 120 > "$out/train.log" 2>&1
fi
basins() { grep -E "alpha|beta" "$1" | sed 's/^/    /'; }
pdb_of() { [ -f "$here/ref25/$1.pdb" ] && echo "$here/ref25/$1.pdb" || echo "$TRAIN_MD/shards/$1/topology.pdb"; }
for s in $HELD $SCORE; do
  o=$out/$s
  [ -f $o/summary.json ] || $B sample --run "$out/run" --pdb "$(pdb_of $s)" --method proposal \
    --n 3000 --out $o > $o.log 2>&1
  if [ "$s" = "$HELD" ]; then ref=m25-ref/$s.npy; else ref=$TRAIN_MD/shards/$s; fi
  $B eval --samples $o --reference $ref --pdb "$(pdb_of $s)" --out $o-eval > $o-eval.log 2>&1
  echo "$s (proposal of $INIT fine-tuned on $(echo $PAIRS | wc -w) related pairs, $STEPS steps):"
  basins $o-eval.log
done
exit
}
