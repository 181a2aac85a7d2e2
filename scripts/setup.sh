#!/usr/bin/env bash
# Create (or reuse) .venv/ with cplvad installed in editable mode and the exact pins of constraints.txt.
# A .venv is reused when it was built from the same pyproject.toml + constraints.txt and still imports.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
stamp=.venv/.cplvad-setup
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)

if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && .venv/bin/python -c "import cplvad, torch, open_clip, av, mlflow" 2>/dev/null; then
  echo "setup: reusing .venv (up to date)"
  exit 0
fi

echo "setup: creating .venv (first run: several minutes, PyTorch is large)"
"$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -c constraints.txt -e ".[pipelines,serving,dev]"
echo "$want" > "$stamp"
echo "setup: done; activate with 'source .venv/bin/activate' or call .venv/bin/cplvad"
