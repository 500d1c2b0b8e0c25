#!/bin/bash
# Build the shared lab root file system (Debian bookworm minbase + the lab's daemons).
# Usage: rootfs.sh TARGET_DIR MIRROR "deb packages..." "pip packages..."
# Called by lab/build.py, which builds into a temporary directory and renames it into
# the cache only when this script exits 0, so a half-built root is never used.
# Every failing step prints one line starting with "STEP-FAILED:" naming the step.
set -u -o pipefail
root=$1; mirror=$2; debs=$3; pips=$4
log=${root}.log
fail() { echo "STEP-FAILED: $*"; exit 1; }

debootstrap --variant=minbase bookworm "$root" "$mirror" >>"$log" 2>&1 \
  || fail "debootstrap --variant=minbase bookworm ($mirror), see $log"

# Only during the build the chroot needs a resolver (apt talks to the mirror from the
# build host's own network namespace); it is emptied again at the end.
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\n# lab build: never start services while installing\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"

mount -t proc proc "$root/proc" || fail "mount proc in build root"
trap 'umount "$root/proc" 2>/dev/null' EXIT
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
chroot "$root" apt-get update >>"$log" 2>&1 || fail "apt-get update in build root, see $log"
# Missing packages: name them on one line before apt-get's own failure.
missing=""
for p in $debs; do
  chroot "$root" apt-cache show "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] || fail "Debian package(s) not found:$missing"
# shellcheck disable=SC2086
chroot "$root" apt-get install -y --no-install-recommends $debs >>"$log" 2>&1 \
  || fail "apt-get install of the lab packages, see $log"
chroot "$root" apt-get clean

# The lab's own offline security archive and its one package (lab/apt-archive.sh).
bash "$(dirname "$0")/apt-archive.sh" "$root" "$log" || fail "the lab security archive (lab/apt-archive.sh), see $log"

if [ -n "$pips" ]; then
  # Pure-Python libraries (pynetdicom, pydicom) are not in bookworm; install them with the
  # build host's pip (same Python minor version as the root) into the root's site dir. $PYTHON is
  # tcmscan's own interpreter (lab/build.py), whose venv has pip.
  # shellcheck disable=SC2086
  "${PYTHON:-python3}" -m pip install --quiet --no-cache-dir --no-deps --disable-pip-version-check \
    --target "$root/usr/local/lib/python3.11/dist-packages" $pips >>"$log" 2>&1 \
    || fail "pip install of $pips into the root, see $log"
fi

# Per-host identity comes from each host's overlay layer: no shared host keys,
# no machine-id, no resolver (no DNS may ever leave the lab), names from /etc/hosts only.
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/machine-id"
: >"$root/etc/resolv.conf"
sed -i 's/^hosts:.*/hosts:          files/' "$root/etc/nsswitch.conf"
# Containers have no kernel log to read.
sed -i 's/^module(load="imklog".*/# imklog: no kernel log inside a lab host/' "$root/etc/rsyslog.conf" 2>/dev/null
rm -f "$root/usr/sbin/policy-rc.d"
echo "build ok"
