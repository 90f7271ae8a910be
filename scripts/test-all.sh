#!/usr/bin/env bash
# Install everything the suite needs on a fresh machine, lint (scripts/lint.sh), check the built wheel
# (scripts/wheel-smoke.sh; WHEEL_SMOKE=0 skips it), then run the whole suite. Idempotent: a second run reuses
# the virtual environments.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
# The environments take about 8 GB (torch's CUDA build alone 5.5) and a run of the suite 1-2 GB more: say so
# up front, in one line, rather than failing half-way through an install with pip's "No space left on device".
free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((10 * 1024 * 1024)) ]; then
  echo "test-all: only $((free_kb / 1024)) MB free on $(df -P . | awk 'NR == 2 {print $6}'); installing and testing need about 10 GB" >&2
fi
# No wheel cache: on a fresh machine it only doubles what the installs write.
export PIP_NO_CACHE_DIR=1
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/pip install -q --upgrade pip >/dev/null
# torch/torchvision: ranges in pyproject; this machine's pip resolves them from local disk.
.venv/bin/pip install -q -e '.[train,serve,export,test]'

# Lint and format check first (ruff comes with the test extra): fails fast, before the long installs.
RUFF=.venv/bin/ruff bash scripts/lint.sh

# Label Studio pins its own Django and SDK: it lives in its own environment.
if [ ! -x .venv-studio/bin/label-studio ]; then
  "$PY" -m venv .venv-studio
  .venv-studio/bin/pip install -q "label-studio>=1.23,<1.24" "sentry-sdk>=2.16,<3"  # as curate studio install
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

# One pytest worker per core, at most 4 (pytest-xdist: each worker starts its own Label Studio and PostgreSQL), a
# file's tests on one worker so its module fixtures are built once. TEST_WORKERS=0 runs them in this process.
cores=$(nproc 2>/dev/null || echo 1)
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-$((cores < 4 ? cores : 4))}" --dist loadfile "$@"
