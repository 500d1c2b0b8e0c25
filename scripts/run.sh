#!/usr/bin/env bash
# The main job in one command: install, then scan the lab (default) or the targets you name.
#   scripts/run.sh                                   build + start the lab, scan it, write the report
#   scripts/run.sh 192.0.2.0/24 --scope 192.0.2.0/24 [tcmscan scan options]   scan your own network
# tcmscan runs from its virtual environment (scripts/_venv.sh: $TCMSCAN_VENV, default /opt/tcmscan/venv as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
if (($#)); then
  bash scripts/install.sh
else
  bash scripts/install.sh --lab
fi
# The venv first on PATH, as if activated: what tcmscan starts (the lab build's `python3 -m pip`) finds its Python.
export PATH="$VENV/bin:$PATH"
tcmscan="$VENV/bin/tcmscan"
py="$VENV/bin/python"
out="${TCMSCAN_OUT:-$PWD/out}"
mkdir -p "$out"
if (($#)); then
  status=0
  scan_id=$("$tcmscan" scan "$@" --quiet) || status=$?
else
  "$tcmscan" lab up
  lab=$("$tcmscan" lab status --json)
  inv=$("$py" -c 'import json,sys; print(json.load(sys.stdin)["inventory"])' <<<"$lab")
  creds=$("$py" -c 'import json,sys; print(json.load(sys.stdin)["credentials"])' <<<"$lab")
  ca=$("$py" -c 'import json,sys; print(json.load(sys.stdin)["ca"])' <<<"$lab")
  status=0
  # 10.77.0.1 is this machine's side of the lab bridge: not part of the fake hospital.  `lab use`: the scan runs
  # only while the lab subnet is the bridge's, and a `lab down` elsewhere waits for it (else the subnet would
  # follow the default route and the scan's packets would leave the machine).
  scan_id=$("$tcmscan" lab use -- "$tcmscan" scan 10.77.0.0/24 --scope 10.77.0.0/24 --exclude 10.77.0.1 --inventory "$inv" \
    --credentials "$creds" --ca-file "$ca") || status=$?
fi
[[ -n "${scan_id:-}" ]] || exit "$status"
"$tcmscan" findings "$scan_id"
if "$tcmscan" report --help >/dev/null 2>&1; then
  "$tcmscan" report "$scan_id" --format html,json,csv,sarif --lang zh --out "$out/$scan_id"
  echo "report: $out/$scan_id" >&2
fi
exit "$status"
