#!/usr/bin/env bash
# Mutation fuzzing of every reader of user files (PDB, npy, XTC, DCD, MD checkpoint, bgen run TOML,
# sequences file, dataset.json) for
# BGEN_FUZZ_SECS seconds per target (default 600), reporting the executions of each.
# A panicking input is saved and named in the failure. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export BGEN_FUZZ_SECS="${1:-${BGEN_FUZZ_SECS:-600}}"
eval "$(scripts/libtorch.sh)"
cargo test --release -p bgen --test fuzz -- --nocapture --test-threads 1 2>&1 \
    | grep -E "executions|panicked|test result"
