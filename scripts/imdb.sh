#!/usr/bin/env bash
# The main job: IMDb end to end with `ulmfit run imdb` (imdb-fast on a GPU, imdb-cpu otherwise).
# Uses ../shared/data/aclImdb_v1.tar.gz (or $IMDB) when it exists, otherwise downloads IMDb once into
# ~/.cache/ulmfit. The run folder is runs/<preset>; the last line names the report and the accuracy.
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
if [ -e "$SRC" ]; then
  exec .venv/bin/ulmfit run "${PRESET:-imdb}" --source "$SRC" "$@"
else
  exec .venv/bin/ulmfit run "${PRESET:-imdb}" "$@"
fi
