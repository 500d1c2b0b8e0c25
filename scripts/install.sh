#!/usr/bin/env bash
# Installs tcmscan on a Debian 12 machine: the Debian packages it needs (apt-get, as root), then tcmscan itself,
# editable (the checkout is what runs), into a virtual environment of its own, with `tcmscan` linked onto PATH.
# Idempotent; a second run with nothing changed takes about a second.
#
# Usage: scripts/install.sh [--lab] [--test] [--no-apt]
#   (none)    Debian packages from scripts/apt-runtime.txt: what scans and reports need
#   --lab     and scripts/apt-lab.txt: what `tcmscan lab up` needs on this machine
#   --test    and apt-lab.txt and scripts/apt-test.txt (daemons and peers the tests start themselves),
#             and tcmscan's [test] extra (pytest, ruff, sslyze, ...)
#   --no-apt  no Debian packages at all (not root, or installed by other means)
#
# Where (scripts/_venv.sh): the venv is $TCMSCAN_VENV, default /opt/tcmscan/venv as root and
# ~/.local/share/tcmscan/venv otherwise; the link is $TCMSCAN_BIN/tcmscan, default /usr/local/bin/tcmscan as
# root and ~/.local/bin/tcmscan otherwise. The venv is made from python3 on PATH when that is Python >= 3.11 with
# venv support, else from Debian's /usr/bin/python3 (python3-venv). pip runs only inside the venv (Debian's own
# python3 is externally managed, PEP 668), and only when pyproject.toml, the checkout or the extras changed since
# the last install (recorded in $VENV/.tcmscan-stamp).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

lab="" test="" apt=1
for arg in "$@"; do
  case "$arg" in
    --lab) lab=1 ;;
    --test) lab=1 test=1 ;;
    --no-apt) apt="" ;;
    *) echo "install: unknown option $arg (usage: scripts/install.sh [--lab] [--test] [--no-apt])" >&2; exit 2 ;;
  esac
done

# --- Debian packages -------------------------------------------------------------------------------------------
lists=(scripts/apt-runtime.txt)
[[ -n "$lab" ]] && lists+=(scripts/apt-lab.txt)
[[ -n "$test" ]] && lists+=(scripts/apt-test.txt)
want=()
if [[ -n "$apt" ]]; then
  while read -r line; do
    pkg="${line%%#*}"
    pkg="${pkg//[[:space:]]/}"
    [[ -z "$pkg" ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || want+=("$pkg")
  done < <(cat "${lists[@]}")
fi

if ((${#want[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install: need root to apt-get install: ${want[*]} (or install them yourself and pass --no-apt)" >&2
    exit 2
  fi
  echo "install: apt-get install ${want[*]}" >&2
  # Another apt-get (unattended-upgrades, a second install) holding the lock: wait for it rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # Daemons installed for the tests (redis, snmpd, postgresql, ...) must not start as system services:
  # tests start their own on loopback. A policy-rc.d that says "no" does that, and is removed after.
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${want[@]}" >/dev/null || status=$?
  [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
  if ((status)); then
    echo "install: apt-get install failed ($status) for: ${want[*]}" >&2
    exit 2
  fi
fi

# --- the virtual environment -----------------------------------------------------------------------------------
if [[ -z "$VENV" || "$VENV" == "$PWD" ]]; then
  echo "install: TCMSCAN_VENV must name a directory of its own, not '${TCMSCAN_VENV:-}'" >&2
  exit 2
fi

# One install into a venv at a time (run.sh and test.sh may start together).
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

venv_ok() {  # a venv (not the interpreter it was made from) of Python >= 3.11, with pip
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c \
    'import sys, pip; sys.exit(not (sys.version_info >= (3, 11) and sys.prefix != sys.base_prefix))' 2>/dev/null
}

base_python() {  # prints the interpreter to make the venv from
  local py
  for py in "$(command -v python3 || true)" /usr/bin/python3; do
    [[ -n "$py" && -x "$py" ]] || continue
    # venv alone is not enough: without python3-venv, Debian's python3 has no ensurepip and makes no venv.
    # A pyenv shim or a venv's python prints the real base interpreter.
    "$py" -c 'import sys, venv, ensurepip
assert sys.version_info >= (3, 11)
print(getattr(sys, "_base_executable", "") or sys.executable)' 2>/dev/null && return 0
  done
  return 1
}

if ! venv_ok; then
  if [[ -e "$VENV" && ! -e "$VENV/pyvenv.cfg" && -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
    echo "install: $VENV exists and is not a virtual environment: not touching it (set TCMSCAN_VENV)" >&2
    exit 2
  fi
  if ! py=$(base_python); then
    echo "install: no Python >= 3.11 that can make a venv (apt-get install python3-venv)" >&2
    exit 2
  fi
  [[ -e "$VENV/pyvenv.cfg" ]] && rm -rf "$VENV"   # broken or too old: made again
  echo "install: creating the virtual environment $VENV ($py)" >&2
  "$py" -m venv "$VENV"
fi

# --- tcmscan into the venv, unless the stamp says it is there already ------------------------------------------
extras="" need="runtime"
[[ -n "$test" ]] && extras="[test]" need="test"
key="$(sha256sum pyproject.toml | cut -d' ' -f1) $PWD"
stamp="$VENV/.tcmscan-stamp"
have=""
if [[ -f "$stamp" && -x "$VENV/bin/tcmscan" ]]; then
  { read -r stamp_key; read -r have; } <"$stamp" || true
  [[ "${stamp_key:-}" == "$key" ]] || have=""
fi
# [test] includes the runtime; a failed pip leaves no stamp, so the next run tries again.
if [[ "$have" != "test" && "$have" != "$need" ]]; then
  echo "install: pip install -e .${extras} into $VENV" >&2
  rm -f "$stamp"
  log="$(mktemp)"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".${extras}" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    echo "install: pip install into $VENV failed" >&2
    exit 2
  fi
  rm -f "$log"
  printf '%s\n%s\n' "$key" "$need" >"$stamp"
fi

# --- `tcmscan` on PATH -----------------------------------------------------------------------------------------
if [[ "$(readlink "$BIN_DIR/tcmscan" 2>/dev/null)" != "$VENV/bin/tcmscan" ]]; then
  mkdir -p "$BIN_DIR"
  ln -sfn "$VENV/bin/tcmscan" "$BIN_DIR/tcmscan"
  echo "install: linked $BIN_DIR/tcmscan -> $VENV/bin/tcmscan" >&2
fi
case ":$PATH:" in
  *":$BIN_DIR:"*) ;;
  *) echo "install: note: $BIN_DIR is not on PATH; run $VENV/bin/tcmscan or add $BIN_DIR to PATH" >&2 ;;
esac
