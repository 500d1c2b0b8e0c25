#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what the tests need, runs ruff and pytest
# (lab tests included when root). "No tests ran" is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
python3 -m ruff check .
status=0
python3 -m pytest -p no:cacheprovider "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "test: pytest collected no tests: failing" >&2
  exit 1
fi
exit $status
