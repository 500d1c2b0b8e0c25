#!/bin/bash
# The lab's own security archive: a file:/ repository inside the root (offline: no lab host ever
# reaches a mirror), suite bookworm-security, holding one lab-built package, lab-hospital-tools.
# The root gets the fixed build 1.0-2 from it, so every host is up to date; his installs the
# unpatched 1.0-1 (kept outside the archive, in /srv/lab-apt/unpatched) at start: its pending
# security update is planted.  host.snapshot reads it with `apt-get -s upgrade`, which shows
# "Inst lab-hospital-tools [1.0-1] (1.0-2 tcmscan-lab-security:12/bookworm-security [all])".
# There is deliberately no Debian security source: what it serves changes every week, and the
# ground truth (lab/expected-findings.yaml) must not depend on the day the root was built.
# Usage: apt-archive.sh ROOT [LOG]   (ROOT / inside the compose image, lab/docker/Dockerfile).
# Called by lab/rootfs.sh; lab/build.py hashes this file into the root's cache key.
set -eu -o pipefail
root=${1%/}; log=${2:-/dev/null}
repo=/srv/lab-apt
in_root() { if [ -z "$root" ]; then "$@"; else chroot "$root" "$@"; fi; }
arch=$(in_root dpkg --print-architecture)
dists=$repo/dists/bookworm-security
mkdir -p "$root$repo/pool/main" "$root$repo/unpatched" "$root$dists/main/binary-$arch"

lab_deb() {  # lab_deb VERSION NOTE DEST: build lab-hospital-tools VERSION into DEST (a path in the root)
  local pkg=$root/tmp/lab-hospital-tools
  rm -rf "$pkg"
  mkdir -p "$pkg/DEBIAN" "$pkg/usr/share/lab-hospital-tools"
  printf 'lab-hospital-tools %s: %s\n' "$1" "$2" >"$pkg/usr/share/lab-hospital-tools/VERSION"
  printf '%s\n' "Package: lab-hospital-tools" "Version: $1" "Architecture: all" \
    "Maintainer: tcmscan lab <lab@tcmscan.invalid>" "Section: misc" "Priority: optional" \
    "Description: tcmscan lab in-house tools (stands in for a hospital application package)" \
    " Built by lab/apt-archive.sh; exists only in the lab's offline security archive." >"$pkg/DEBIAN/control"
  in_root dpkg-deb --root-owner-group --build /tmp/lab-hospital-tools "$3" >>"$log" 2>&1
  rm -rf "$pkg"
}
lab_deb 1.0-1 "unpatched build" "$repo/unpatched/lab-hospital-tools_1.0-1_all.deb"
deb=pool/main/lab-hospital-tools_1.0-2_all.deb
lab_deb 1.0-2 "fixes LAB-SA-2024-01, the lab's own made-up advisory (no CVE)" "$repo/$deb"

packages=$dists/main/binary-$arch/Packages
{ in_root dpkg-deb -f "$repo/$deb"
  echo "Filename: $deb"
  echo "Size: $(stat -c %s "$root$repo/$deb")"
  echo "SHA256: $(sha256sum <"$root$repo/$deb" | cut -d' ' -f1)"
} >"$root$packages"
{ printf '%s\n' "Origin: tcmscan-lab" "Label: tcmscan-lab-security" "Suite: bookworm-security" \
    "Codename: bookworm-security" "Version: 12" "Date: $(date -u -R)" "Architectures: $arch all" \
    "Components: main" "Description: tcmscan lab offline security archive (lab-built packages only)" "SHA256:"
  printf ' %s %s main/binary-%s/Packages\n' "$(sha256sum <"$root$packages" | cut -d' ' -f1)" \
    "$(stat -c %s "$root$packages")" "$arch"
} >"$root$dists/Release"

# Unsigned (minbase has no gpg): trusted explicitly, and only this local directory.
echo "deb [trusted=yes] file:$repo bookworm-security main" >"$root/etc/apt/sources.list.d/lab-security.list"
in_root apt-get update -o Dir::Etc::sourcelist=sources.list.d/lab-security.list \
  -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >>"$log" 2>&1
in_root apt-get install -y --no-install-recommends lab-hospital-tools >>"$log" 2>&1
in_root apt-get clean
