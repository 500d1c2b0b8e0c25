#!/bin/sh
# PID 2 of every lab host (tini is PID 1 and reaps orphans).  Lands at
# /usr/local/lib/lab/init.sh: top-level files of lab/hosts/<layer>/ go to /usr/local/lib/lab/.
set -u
mkdir -p /run/sshd /run/vsftpd/empty /var/log/lab /tmp
chmod 1777 /tmp
# Host keys were deleted from the shared root: each host makes its own.
ssh-keygen -A >/dev/null 2>&1
# Packages this host must not have at all (topology: absent_packages).
for p in ${LAB_ABSENT_PACKAGES:-}; do
  # --force-depends: telnetd (unused on such a host) depends on "a" syslog daemon
  dpkg --purge --force-depends "$p" >>/var/log/lab/init.log 2>&1
done
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
/usr/sbin/sshd -E /var/log/lab/sshd.log
touch /run/lab-started
exec sleep infinity
