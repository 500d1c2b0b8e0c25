#!/usr/bin/env bash
# Installs what tcmscan needs on a Debian machine (root): Debian packages, then the Python package.
# Idempotent and quick when everything is already there. Usage: scripts/install.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || want+=("$pkg")
done < scripts/apt-packages.txt

if ((${#want[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install: need root to apt-get install: ${want[*]}" >&2
    exit 2
  fi
  echo "install: apt-get install ${want[*]}" >&2
  apt-get update -qq
  # Daemons installed for the tests (redis, snmpd, postgresql, ...) must not start as system services:
  # tests start their own on loopback. A policy-rc.d that says "no" does that, and is removed after.
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null || status=$?
  [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
  if ((status)); then
    echo "install: apt-get install failed ($status) for: ${want[*]}" >&2
    exit 2
  fi
fi

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".${extras}"
