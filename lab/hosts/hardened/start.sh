# lab hardened: nginx; backups are made by post-up.sh once the backup host answers
chmod 600 /root/.restic-password /root/.ssh/id_backup
nginx
