#!/usr/bin/env bash
# Lint and format check of the whole tree with the settings in pyproject.toml ([tool.ruff]).
# Fix with `ruff check --fix .` and `ruff format .`; CI runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."
RUFF=${RUFF:-ruff}
if ! command -v "$RUFF" >/dev/null; then RUFF=".venv/bin/ruff"; fi
"$RUFF" check .
"$RUFF" format --check .
