#!/usr/bin/env bash
# Install everything the suite needs on a fresh machine, lint (scripts/lint.sh), check the built wheel
# (scripts/wheel-smoke.sh; WHEEL_SMOKE=0 skips it), then run the whole suite. Idempotent: a second run reuses
# the virtual environments.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/pip install -q --upgrade pip >/dev/null
# torch/torchvision: ranges in pyproject; this machine's pip resolves them from local disk.
.venv/bin/pip install -q -e '.[train,serve,export,test]'

# Lint and format check first (ruff comes with the test extra): fails fast, before the long installs.
RUFF=.venv/bin/ruff bash scripts/lint.sh

# Label Studio pins its own Django and SDK: it lives in its own environment.
if [ ! -x .venv-studio/bin/label-studio ]; then
  "$PY" -m venv .venv-studio
  .venv-studio/bin/pip install -q "label-studio>=1.23,<1.24"
fi
export CURATE_LABEL_STUDIO="$PWD/.venv-studio/bin/label-studio"

# The suite starts its own PostgreSQL server from the server binaries.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  else
    echo "PostgreSQL 15 server binaries missing: install postgresql-15" >&2
  fi
fi

# The blinding tests drive Debian's chromium with Playwright (never `playwright install`).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium missing: install Debian's chromium package (the browser tests need it)" >&2
  fi
fi

# The wheel a user installs, in a fresh venv without extras: README's first command, label help, label config.
if [ "${WHEEL_SMOKE:-1}" != 0 ]; then PYTHON="$PY" BUILD_PY="$PWD/.venv/bin/python" bash scripts/wheel-smoke.sh; fi

exec .venv/bin/python -m pytest "$@"
