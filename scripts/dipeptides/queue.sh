#!/usr/bin/env bash
# Issue 25's long CPU work, each step resumable (rerun after a stop): the held-out references of
# seeds 1 and 2, then the training data, then `references.sh more` (seeds 3 and 4 where the
# first two disagree; the floors come from measure25.sh floor). References first: they are small
# enough to keep (`references.sh keep` thins them into scripts/dipeptides/ref25/), so a lost
# machine loses at most the training data. Run from a work directory with BGEN set; the steps
# write ref25-seed1/, ref25-seed2/ and train-remd/ there.
# Braced and ended by exit: bash reads it whole before it runs, so an edit while it runs
# (hours, for some) cannot change what the running copy does.
{
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SEEDS="1 2" "$here/references.sh"
"$here/train_data.sh"
"$here/references.sh" more
exit
}
