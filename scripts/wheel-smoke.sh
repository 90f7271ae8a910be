#!/usr/bin/env bash
# The wheel a user gets: build it with `python -m build` (sdist, then the wheel from the sdist), install it
# without extras in a fresh virtual environment, and run the README's first command in an empty folder,
# the label commands' help, and the packaged label config, with a clean environment (no PYTHONPATH, no
# CURATE_* settings) so nothing can come from this checkout. test-all.sh runs it before pytest (WHEEL_SMOKE=0
# skips it there); it prints how long each step took.
#   BUILD_PY  a python with the `build` package (default: .venv/bin/python, which has the [test] extra)
#   PYTHON    the interpreter for the fresh venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
BUILD_PY=${BUILD_PY:-$repo/.venv/bin/python}
PY=${PYTHON:-python3}
unset PYTHONPATH
start=$SECONDS
tmp=$(mktemp -d)
# setuptools writes mpox_curate.egg-info into the checkout while making the sdist: remove it if we made it.
egg=$repo/mpox_curate.egg-info
[ -e "$egg" ] && egg=
trap 'rm -rf "$tmp" ${egg:+"$egg"}' EXIT

times=()
step() {  # step NAME COMMAND...: run quietly, time it, print the log and fail on error
  local name=$1 t0=$SECONDS; shift
  if ! "$@" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    echo "wheel-smoke: $name failed" >&2
    exit 1
  fi
  times+=("$name $((SECONDS - t0))s")
}
# A new user's shell: a home of their own, the venv's commands, nothing else.
as_user() { (cd "$tmp/empty" && env -i HOME="$tmp/home" PATH="$tmp/venv/bin:/usr/bin:/bin" LANG=C.UTF-8 "$@"); }

step "python -m build" "$BUILD_PY" -m build --outdir "$tmp/dist" "$repo"
wheels=("$tmp"/dist/*.whl)
# No pip of its own (ensurepip costs seconds): BUILD_PY's pip installs into it. --no-compile: byte-compiling
# every dependency is most of pip's time; Python compiles what is imported.
step "fresh venv" "$PY" -m venv --without-pip "$tmp/venv"
step "pip install" "$BUILD_PY" -m pip --python "$tmp/venv/bin/python" install -q --no-compile "${wheels[0]}"
mkdir -p "$tmp/empty" "$tmp/home"

step "curate pipeline --demo" as_user curate pipeline --demo
[ -f "$tmp/empty/catalogue.db" ] || { echo "wheel-smoke: curate pipeline --demo made no catalogue.db" >&2; exit 1; }
step "curate label --help" as_user curate label --help
grep -q "push" "$tmp/log" || { cat "$tmp/log" >&2; echo "wheel-smoke: curate label --help lists no push" >&2; exit 1; }
step "curate label push --help" as_user curate label push --help
grep -q -- "--raters" "$tmp/log" || { cat "$tmp/log" >&2; echo "wheel-smoke: push --help shows no --raters" >&2; exit 1; }
# What `curate label push` sends to Label Studio, rendered from the config inside the installed wheel.
step "label config from the wheel" as_user python -c '
import sys
from curate.label.config import LABEL_CONFIG, render
from curate.label.diagnoses import PAPER
assert str(LABEL_CONFIG).startswith(sys.prefix), f"label config not from the installed wheel: {LABEL_CONFIG}"
assert "name=\"diagnosis\"" in render(PAPER)
'
echo "wheel-smoke: ${wheels[0]##*/} built, installed in a fresh venv and run in $((SECONDS - start)) s"
printf '  %s\n' "${times[@]}"
