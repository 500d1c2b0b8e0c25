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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".${extras}"
