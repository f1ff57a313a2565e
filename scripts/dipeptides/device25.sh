#!/bin/bash
# measure25.sh on a lent GPU machine (the H200 machines of this workplace: 16 cores, torch 2.11
# cu130 in /opt/torch/.venv, no network), run from the repository root there. Carry an ignored
# folder devrun/ holding bgen.xz (a stripped release build of this machine, xz'd: the repository
# and the plain binary pass the 64 MiB carry limit) and, for a trained run, its directory
# (EMA weights, state.json, run.json, latest.json). The 16 cores make the 3-seed `zero` sweep
# of the 12 held-out dipeptides 171-252 s (25 min on the 2-core VM). CUDA: the build links
# without libtorch_cuda; LD_PRELOAD it for --device cuda.
#   bash scripts/dipeptides/device25.sh MODEL MODE...   (MODEL: devrun/<run> or dipeptides)
set -u
R=$(pwd)
TL=/opt/torch/.venv/lib/python3.12/site-packages
export LD_LIBRARY_PATH=$TL/torch/lib:$TL/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}
xz -dc "$R/devrun/bgen.xz" > /tmp/bgen && chmod +x /tmp/bgen
M=$1; shift
[ -d "$R/$M" ] && M=$R/$M
mkdir -p /tmp/w && cd /tmp/w
BGEN=/tmp/bgen PYTHON=python3 MODEL=$M bash "$R/scripts/dipeptides/measure25.sh" "$@"
python3 "$R/scripts/dipeptides/table25.py" "m25-$(basename "$M")" | tee "$OUT/table.md"
tar czf "$OUT/m25.tgz" --exclude='*.npy' "m25-$(basename "$M")"
