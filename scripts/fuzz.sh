#!/usr/bin/env bash
# A longer fuzzing session than CI runs: the parsers' hypothesis tests (tests/fuzz) under the "long" profile,
# round after round with fresh random inputs, until MINUTES (default 30) have passed. Examples that broke a
# parser are kept in .hypothesis/fuzz and replayed first in the next round and session; the session stops at the
# first failure (exit 1) with the example pytest printed. CI runs the same tests under the bounded "ci" profile.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
minutes="${1:-30}"
if ! [[ "$minutes" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [MINUTES]   (a whole number of minutes, default 30)" >&2
  exit 2
fi
export TCMSCAN_FUZZ_PROFILE=long
export TCMSCAN_FUZZ_EXAMPLES="${TCMSCAN_FUZZ_EXAMPLES:-5000}"    # per test and round
end=$((SECONDS + minutes * 60))
round=0
while ((SECONDS < end)); do
  round=$((round + 1))
  echo "fuzz: round $round ($TCMSCAN_FUZZ_EXAMPLES examples per test), $(((end - SECONDS + 59) / 60)) min left"
  status=0
  timeout --signal=INT "$((end - SECONDS))" "$VENV/bin/python" -m pytest -p no:cacheprovider -q -x tests/fuzz \
    || status=$?
  if ((status == 124)); then
    break                       # the time is up in the middle of a round: nothing failed
  elif ((status != 0)); then
    echo "fuzz: round $round failed (pytest exit $status); the example is above and in .hypothesis/fuzz" >&2
    exit 1
  fi
done
echo "fuzz: $round round(s) in $minutes min, no parser failed"
