#!/usr/bin/env bash
# MD of many peptides on many nodes: a SLURM job array whose tasks run disjoint sets of shards
# (one shard per sequence) into one shared directory. Each task runs the shards whose index
# modulo the array's size is its task id; a shard that is finished is skipped and one that was
# interrupted is resumed, so resubmitting the same array completes a run. When every task is
# done, check and split the shards:  bgen dataset merge --run $OUT --out DATA --held-out-count 5
#
#   sbatch --array=0-15 scripts/slurm/md_shards.sh sequences.txt /shared/dipeptides-md [bgen md options]
#
# Locally, as plain processes (what the tests do):
#   SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=2 scripts/slurm/md_shards.sh seqs.txt out --ns 0.01
#
#SBATCH --job-name=bgen-md-shards
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=bgen-md-shards-%A_%a.log
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SEQUENCES_FILE OUT_DIR [bgen md options...]" >&2
    exit 2
fi
sequences=$1
out=$2
shift 2
: "${SLURM_ARRAY_TASK_ID:?not in a SLURM array (set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT)}"
# SLURM_ARRAY_TASK_COUNT is set by SLURM 20.02 and later; older ones: max - min + 1.
count=${SLURM_ARRAY_TASK_COUNT:-$(( ${SLURM_ARRAY_TASK_MAX:?} - ${SLURM_ARRAY_TASK_MIN:-0} + 1 ))}
index=$(( SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0} ))
threads=${SLURM_CPUS_PER_TASK:-$(nproc)}

exec "${BGEN:-bgen}" md --sequences-file "$sequences" --out "$out" \
    --shard-index "$index" --shard-count "$count" --threads "$threads" "$@"
