#!/usr/bin/env bash
# Mutation fuzzing of every reader of user files (PDB, npy, XTC, DCD, MD checkpoint, bgen run TOML,
# sequences file, dataset.json) for
# BGEN_FUZZ_RUNS seeded mutations per target (default 200,000: minutes each), reporting the
# executions and their time. A panicking input is saved and named in the failure.
# Usage: scripts/fuzz.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export BGEN_FUZZ_RUNS="${1:-${BGEN_FUZZ_RUNS:-200000}}"
eval "$(scripts/libtorch.sh)"
cargo test --release -p bgen --test fuzz -- --nocapture --test-threads 1 2>&1 \
    | grep -E "executions|panicked|test result"
