#!/bin/sh
# PID 2 of every lab host (tini is PID 1 and reaps orphans).  Lands at
# /usr/local/lib/lab/init.sh: top-level files of lab/hosts/<layer>/ go to /usr/local/lib/lab/.
set -u
mkdir -p /run/sshd /run/vsftpd/empty /var/log/lab /tmp
chmod 1777 /tmp
# Host keys were deleted from the shared root: each host makes its own.
ssh-keygen -A >/dev/null 2>&1
# Packages this host must not have at all (topology: absent_packages, dependents first, so the
# dpkg database stays consistent: `apt-get -s upgrade`, which host.snapshot runs, refuses to
# simulate anything on a host with unmet dependencies).
for p in ${LAB_ABSENT_PACKAGES:-}; do
  dpkg --purge "$p" >>/var/log/lab/init.log 2>&1 || { echo "lab: dpkg --purge $p failed" >&2; exit 1; }
done
# Host firewall, loaded before any service as nftables.service does at boot where it is enabled
# (the host's layer has the enablement symlink and its own /etc/nftables.conf).  A host without
# it has no ruleset at all.  A ruleset that does not load stops the host: the ground truth
# counts on it.
if [ -L /etc/systemd/system/sysinit.target.wants/nftables.service ]; then
  nft -f /etc/nftables.conf || { echo "lab: nft -f /etc/nftables.conf failed" >&2; exit 1; }
fi
# The host's own services (lab/hosts/<name>/start.sh).
if [ -f /usr/local/lib/lab/start.sh ]; then
  sh /usr/local/lib/lab/start.sh >>/var/log/lab/start.log 2>&1
fi
if [ -x /usr/sbin/rsyslogd ]; then
  rm -f /run/rsyslogd.pid
  # Its complaints (e.g. "cannot connect to 10.77.0.30:514": the collector deliberately does not
  # listen) go to a log file, not to console.log, whose last line `lab up` quotes when a host dies.
  /usr/sbin/rsyslogd >>/var/log/lab/rsyslogd.log 2>&1
fi
# Debian's own switch (its init script honours it too): a hostile host whose port 22 misbehaves runs no sshd.
[ -e /etc/ssh/sshd_not_to_be_run ] || /usr/sbin/sshd -E /var/log/lab/sshd.log
touch /run/lab-started
exec sleep infinity
