#!/usr/bin/env bash
# The installed artifact is the tested artifact: build the wheel, install it into a fresh
# virtualenv WITHOUT extras (what `pip install backdrill` and the Dockerfile do), and run
# the installed `backdrill` against a throwaway PostgreSQL and an S3 server
# (scripts/smoke_wheel.py, which starts both from the test virtualenv). An import that
# only the test extras satisfy fails here and nowhere else.
#
#   scripts/smoke-wheel.sh            # VENV=.venv: the test virtualenv (make venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

work=$(mktemp -d "${TMPDIR:-/tmp}/backdrill-wheel-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "==> building the wheel (from the files the Dockerfile copies, so the checkout stays clean)"
mkdir "$work/source"
cp -r pyproject.toml README.md src "$work/source/"
rm -rf "$work"/source/src/*.egg-info
"$VENV/bin/python" -m pip wheel -q --no-deps --wheel-dir "$work/dist" "$work/source" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
wheel=$(ls "$work"/dist/backdrill-*.whl)
echo "$(basename "$wheel")"

echo "==> installing it into a fresh virtualenv, without extras"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
"$work/venv/bin/python" -m pip check
# the program must come from the wheel, never from this checkout
"$work/venv/bin/python" - "$work/venv" <<'PY'
import sys
from pathlib import Path

import backdrill

where = Path(backdrill.__file__).resolve()
venv = Path(sys.argv[1]).resolve()
if venv not in where.parents:
    sys.exit(f"smoke: backdrill imported from {where}, not from the fresh virtualenv")
PY

echo "==> running the installed backdrill"
"$VENV/bin/python" scripts/smoke_wheel.py "$work/venv/bin/backdrill"
