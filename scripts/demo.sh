#!/usr/bin/env bash
# The main job on the built-in demo data: generate it, score an oracle and a random predictor.
set -euo pipefail
cd "$(dirname "$0")/.."
out=outputs/demo
cplvad=.venv/bin/cplvad

$cplvad demo-data --out "$out/data"
for kind in oracle random; do
  $cplvad baseline --dataset "$out/data/dataset.yaml" --kind "$kind" --out "$out/$kind.npz"
  $cplvad metrics --dataset "$out/data/dataset.yaml" --predictions "$out/$kind.npz" --out "$out/$kind-metrics.json"
done
