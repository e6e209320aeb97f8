#!/usr/bin/env bash
# The GPU check of issue 22: on one H100/H200, about 5-7 minutes (bounded to 8 by the timeout below).
# Usage: bash benchmarks/gpu_check.sh            (from the repository root, with the project installed)
#        bash benchmarks/gpu_check.sh --smoke    (toy sizes; runs on a CPU too)
# Prints: paper-preset epoch time at width 64 (plain and --compile), model FLOP utilisation, runs per
# hour packed (k = 1, 4, 16) vs one at a time, aten ops and kernel launches per step, the paper suite's
# time (bench estimate), and CUDA-vs-CPU agreement on a small run (losses, weights, suite draws).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
