#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what the tests need (scripts/install.sh --test: Debian
# packages, tcmscan and its [test] extra in the venv of scripts/_venv.sh), runs ruff and pytest from that venv
# (lab tests included when root). "No tests ran" is a failure.
#
# Tests that fail are run once more, on their own, and that second run decides: many tests drive real
# daemons, nmap and the namespace lab on a 2-core machine, and a timing-dependent failure must not hide
# behind a green run — so the first failures are printed in full, and a test that fails twice fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
bash scripts/install.sh --test
# The venv first on PATH, as if activated: peers installed from PyPI (ssh-audit) and the lab build's
# `python3 -m pip` are found there.
export PATH="$VENV/bin:$PATH"
py="$VENV/bin/python"
"$py" -m ruff check .
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
status=0
"$py" -m pytest -o cache_dir="$cache" "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "test: pytest collected no tests: failing" >&2
  exit 1
fi
if [[ $status -eq 1 ]]; then
  echo "test: some tests failed (above); running only those once more" >&2
  status=0
  "$py" -m pytest -o cache_dir="$cache" --last-failed --last-failed-no-failures none "$@" || status=$?
  [[ $status -eq 5 ]] && status=1
fi
exit $status
