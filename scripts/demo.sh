#!/usr/bin/env bash
# The main job: the whole DVC pipeline on the built-in demo videos, then where to look at the results.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

start=$(date +%s)
dvc repro
echo
dvc metrics show
cat <<EOT

pipeline finished in $(( $(date +%s) - start ))s (a second 'make demo' with nothing changed does no work)
  metrics   outputs/eval/metrics.json          (also: dvc metrics show)
  plots     outputs/eval/plots/timelines.png   ROC/PR curves: dvc plots show -> dvc_plots/index.html
  models    outputs/stage1/, outputs/stage2/   registered in MLflow as 'cplvad' (alias 'candidate')
  MLflow UI .venv/bin/mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db  -> http://127.0.0.1:5000
EOT
