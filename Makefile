# The project's entry points on a fresh machine: they install what they need (libtorch through
# PyPI's torch wheel into .venv/, once) and set up the environment for cargo.
.PHONY: test run bench libtorch python docs

libtorch:
	@scripts/libtorch.sh > /dev/null

# The Python package `bgen` (pyo3 + maturin), built against the torch wheel's libtorch and
# installed into .venv/ beside torch: .venv/bin/python -c "import bgen".
python:
	@scripts/python.sh

# The test suite (what CI runs, plus format and lint in .ci/run).
test:
	@eval "$$(scripts/libtorch.sh)" && cargo test --workspace --no-fail-fast
	@scripts/python.sh --profile dev && .venv/bin/python -m pytest -q crates/bgen-py/tests

# The main job on the embedded default (alanine dipeptide): MD data, a TarFlow, SNIS + SMC,
# evaluation and a report in aldp-run/ (about 12 min of bgen run on 2 cores; rerun to resume).
OUT ?= aldp-run
run:
	@eval "$$(scripts/libtorch.sh)" && cargo run --release -p bgen -- run --system aldp --out $(OUT)

bench:
	@eval "$$(scripts/libtorch.sh)" && cargo run --release -p bgen -- bench md && cargo run --release -p bgen -- bench energy \
	  && cargo run --release -p bgen -- bench tarflow && cargo run --release -p bgen -- bench arbg

# docs/cli.md and docs/config.md from the clap and serde definitions (a test fails when stale).
docs:
	@eval "$$(scripts/libtorch.sh)" && cargo run --release -p bgen -- docs --out docs
