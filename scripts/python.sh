#!/usr/bin/env bash
# Builds the `bgen` Python package (crates/bgen-py, pyo3 + maturin) against the libtorch of the
# torch wheel in .venv/ (so that `import torch` and `import bgen` share it) and installs it
# there, with maturin and pytest. Usage: scripts/python.sh [--profile release|dev]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
eval "$("$root/scripts/libtorch.sh")"
profile="release"
if [ "${1:-}" = "--profile" ]; then profile="$2"; fi
venv="$root/.venv"
if ! "$venv/bin/python" -c "import maturin, pytest" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.5,<2" pytest >&2
fi
export VIRTUAL_ENV="$venv"
wheels="$root/target/wheels"
rm -f "$wheels"/bgen-*.whl
"$venv/bin/maturin" build --quiet --profile "$profile" --interpreter "$venv/bin/python" --auditwheel skip \
    --manifest-path "$root/crates/bgen-py/Cargo.toml" --out "$wheels" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/bgen-*.whl >&2
echo "bgen $("$venv/bin/python" -c 'import bgen; print(bgen.__version__)') installed in $venv" >&2
