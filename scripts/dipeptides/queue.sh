#!/usr/bin/env bash
# Issue 25's long CPU work in the order that gives feedback soonest, each step resumable (rerun
# after a stop): the held-out references of seed 1 (a pilot model can be scored against them),
# the training data, then the references of seed 2 (the floors). Run from a work directory
# with BGEN set; the three steps write ref25-seed1/, train-remd/ and ref25-seed2/ there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SEEDS=1 "$here/references.sh"
"$here/train_data.sh"
SEEDS=2 "$here/references.sh"
