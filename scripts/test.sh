#!/usr/bin/env bash
# Create .venv (CPU torch first, so no dependency can pull a CUDA build), install ulmfit, lint, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
# the browser test of `ulmfit serve`'s page (tests/test_serve_page.py) needs Debian's Chromium + its driver
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver >/dev/null
    fi
fi
# lint and type-check src/ first (settings in pyproject.toml): CI fails on a finding
.venv/bin/python -m ruff check src
.venv/bin/python -m ruff format --check src
# scripts, benchmarks and tests: the same rules but line length (so a script that rots shows here)
.venv/bin/python -m ruff check scripts benchmarks tests --ignore E501
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q "$@"
