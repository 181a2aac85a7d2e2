#!/usr/bin/env bash
# The GPU benchmarks, as run on a lent NVIDIA H100/H200 machine (Python 3.12 with PyTorch, no internet),
# and the tests of the CUDA paths (step `tests`: pytest -m gpu; they need pytest, hypothesis and filelock).
# Wheels missing there travel in .whl/ (see the closing notes of the issues for the list).
#   bash benchmarks/gpu.sh tests extract train predict car
# Each step has a time limit, so one slow step cannot starve the others of a short lease.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for step in "$@"; do
  echo "== $step"
  case $step in
    tests) PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" timeout 300 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py ;;
    car) timeout 30 python3 benchmarks/bench_car.py --device cuda --videos 16384 ;;
    train) timeout 220 python3 benchmarks/bench_train.py --ucf-scale --device cuda ;;
    train-profile) timeout 120 python3 benchmarks/bench_train.py --ucf-scale --device cuda --profile --set train.epochs=1 ;;
    extract) timeout 180 python3 benchmarks/bench_extract.py --device cuda --videos 96 --workers-sweep 1,8,16 ;;
    predict) timeout 120 python3 benchmarks/bench_predict.py --device cuda --videos 32 --frames 1800 ;;
    *) echo "unknown step $step" ;;
  esac
done
