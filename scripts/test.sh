#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what the tests need (scripts/install.sh --test: Debian
# packages, tcmscan and its [test] extra in the venv of scripts/_venv.sh), runs ruff and pytest from that venv
# (lab tests included when root). "No tests ran" is a failure, and a test that fails fails the run: nothing is
# retried, so a test that fails once is a bug to fix, never a timing to wait out.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
bash scripts/install.sh --test
# The venv first on PATH, as if activated: peers installed from PyPI (ssh-audit) and the lab build's
# `python3 -m pip` are found there.
export PATH="$VENV/bin:$PATH"
py="$VENV/bin/python"
"$py" -m ruff check .
status=0
"$py" -m pytest -p no:cacheprovider "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "test: pytest collected no tests: failing" >&2
  exit 1
fi
exit $status
