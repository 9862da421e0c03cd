#!/usr/bin/env bash
# The main job: IMDb end to end. Uses ../shared/data/aclImdb_v1.tar.gz (or $IMDB) when it exists,
# otherwise downloads IMDb once into ~/.cache/ulmfit. Output goes to ./runs/imdb (or $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/ulmfit ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e .
fi
SRC=${IMDB:-../shared/data/aclImdb_v1.tar.gz}
[ -e "$SRC" ] || SRC=""   # empty: download from the official URL
OUT=${OUT:-runs/imdb}
.venv/bin/ulmfit prepare imdb $SRC --out "$OUT/data"
.venv/bin/ulmfit tokenize "$OUT/data"
