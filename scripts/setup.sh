#!/usr/bin/env bash
# Create .venv and install the suite: torch==2.13.0 first (so pip never pulls CUDA packages on CPU
# machines), then the package with its dev, ray and wandb extras. Re-running is a no-op until pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.setup-stamp
want=$(sha1sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[dev,ray,wandb]"
    echo "$want" > "$stamp"
fi
