#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment and use it from a folder outside the repository:
# a solve, a short co-simulation (also with the EV plugin example as a subprocess) and a report of each file.
# Catches what an editable install hides: a folder that is not a package, data that is not shipped, a file read by
# a path relative to the checkout. Usage: bash tests/smoke_wheel.sh (from anywhere; needs python3 and PyPI).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH

python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip wheel "$repo" --no-deps --quiet -w "$work/dist"
"$py" -m pip install --quiet "$work"/dist/tsodso-*.whl

mkdir "$work/outside"
cd "$work/outside"
tsodso="$work/venv/bin/tsodso"
where="$("$py" -c 'import coordinator, scenarios; print(coordinator.__file__, scenarios.__file__)')"
case "$where" in
  *"$repo"*) echo "smoke: the packages were imported from the repository ($where), not from the wheel" >&2; exit 1 ;;
esac
set -x
"$tsodso" solve small_2adn --periods 2 --output r.json
"$tsodso" run small_2adn --hours 1 --horizon 2 --output r.h5 --no-progress
"$tsodso" run small_2adn_ev --hours 1 --horizon 2 --output ev.h5 --no-progress
"$tsodso" report r.json
"$tsodso" report r.h5
"$tsodso" compare r.json ev.h5 --json compare.json
set +x
echo "smoke test of the wheel: OK (6 commands from outside the repository)"
