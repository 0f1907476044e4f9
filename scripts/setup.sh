#!/usr/bin/env bash
# Create .venv and install structrepdiff with its test tools, CHGNet (the `mlip` extra) and
# Dask (the `dask` extra, for --scheduler).
# torch is installed first with an exact pin: on machines with a local CPU wheel this avoids
# pulling a multi-GB CUDA build. Elsewhere, for a CPU-only install, first run
#   pip install torch==2.13.0 --index-url <PyTorch's CPU wheel index>
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet -e ".[dev,mlip,dask]"
echo "setup: $(.venv/bin/python -c 'import torch, pymatgen.core as p; print("torch", torch.__version__, "| pymatgen", p.__version__)')"
