#!/usr/bin/env bash
# Installs libtorch 2.11.0 for the `tch` crate (through PyPI's torch wheel, which works with or
# without a GPU) into .venv/ at the repository root, once, and prints the environment that
# cargo needs. Usage: eval "$(scripts/libtorch.sh)"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
want="2.11.0"
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$want' else 1)" 2>/dev/null; then
    echo "installing torch==$want into $venv (about 4.6 GB, a few minutes; once)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$want" numpy >&2
fi
lib="$("$venv/bin/python" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
echo "export PATH=\"$venv/bin:\$PATH\""
echo "export LIBTORCH_USE_PYTORCH=1"
echo "export BGEN_TORCH_LIB=\"$lib\""
echo "export LD_LIBRARY_PATH=\"$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
