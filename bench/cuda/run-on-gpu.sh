#!/usr/bin/env bash
# The command of the GPU run (bench/cuda/README.md), from the repository root on the GPU machine:
#   bash bench/cuda/run-on-gpu.sh OUT_DIR [cuda_builds.py options, e.g. --only mlp-sm90 --deadline 400]
# Needs bench/out/cuda-plan/plan.json (make-plan.ts). Leaves OUT_DIR/cuda-run.tgz (manifests, logs, machine record).
set -uo pipefail
out=${1:?usage: run-on-gpu.sh OUT_DIR [options]}
shift
mkdir -p "$out/run"
PYTHONUNBUFFERED=1 timeout 570 /opt/torch/.venv/bin/python3 bench/cuda/cuda_builds.py \
  --plan bench/out/cuda-plan/plan.json --out "$out/run" "$@" 2>&1 | tee "$out/run/console.log"
tar -C "$out" -czf "$out/cuda-run.tgz" run && rm -rf "$out/run"
ls -l "$out"
