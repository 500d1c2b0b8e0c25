# lab hardened: fresh encrypted backups (restic), an off-host copy on the backup host
# over sftp, a SHA256SUMS manifest and a real restore test, made at every `lab up`.
set -eu
export RESTIC_PASSWORD_FILE=/root/.restic-password HOME=/root
local_repo=/var/backups/restic
remote_repo=sftp:restic@10.77.0.30:/srv/restic/hardened
ssh_cmd="ssh -i /root/.ssh/id_backup -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/root/.ssh/known_hosts_backup restic@10.77.0.30 -s sftp"
mkdir -p /var/backups/lis /var/lib/tcmscan
restic -q -r "$local_repo" snapshots >/dev/null 2>&1 || restic -q -r "$local_repo" init
restic -q -r "$local_repo" backup --tag lis /srv/lis-data /etc/nginx
restic -q -o sftp.command="$ssh_cmd" -r "$remote_repo" snapshots >/dev/null 2>&1 \
  || restic -q -o sftp.command="$ssh_cmd" -r "$remote_repo" init
restic -q -o sftp.command="$ssh_cmd" -r "$remote_repo" backup --tag lis /srv/lis-data /etc/nginx
(cd /srv/lis-data && sha256sum -- *) >/var/backups/lis/SHA256SUMS
# restore test: restore the latest snapshot and verify it against the manifest
rm -rf /tmp/restore-test
restic -q -r "$local_repo" restore latest --target /tmp/restore-test
(cd /tmp/restore-test/srv/lis-data && sha256sum -c --quiet /var/backups/lis/SHA256SUMS)
rm -rf /tmp/restore-test
printf '[{"date": "%s", "set": "lis (%s)", "result": "ok"}]\n' "$(date -u +%Y-%m-%d)" "$local_repo" \
  >/var/lib/tcmscan/restore-tests.json
