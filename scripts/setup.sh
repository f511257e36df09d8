#!/usr/bin/env bash
# Create .venv and install the suite: torch first, then the package with its dev, ray, submitit and wandb extras.
# TORCH (default torch==2.13.0) and TORCH_INDEX_URL choose the torch build, e.g. for a CPU-only machine without a
# local wheel: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (docs/install.md). Re-running is a no-op until
# pyproject.toml or those choices change.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.setup-stamp
want=$( (cat pyproject.toml; echo "$TORCH $TORCH_INDEX_URL") | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "$TORCH" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
    .venv/bin/python -m pip install -q -e ".[dev,ray,submitit,wandb]"
    echo "$want" > "$stamp"
fi
