#!/usr/bin/env bash
# What a session with a GPU runs first (under 10 minutes): LM throughput of the paper-size model in bf16 at
# bs 64/128/256, a 2-GPU torchrun smoke test when there are two GPUs, and the imdb-fast recipe scaled to
# minutes. Writes JSON, logs and report.md under OUT (default: gpu-check/).
#   bash scripts/gpu-check.sh [OUT] [--dry] [--imdb PATH] [--skip throughput,ddp,imdb]
# --dry: the same on the CPU with tiny sizes and synthetic data (the test suite runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import ulmfit" 2>/dev/null; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e .
fi
OUT=gpu-check
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then OUT=$1; shift; fi
exec .venv/bin/python scripts/gpu_check.py "$OUT" "$@"
