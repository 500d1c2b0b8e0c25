# lab hardened: fresh encrypted backups (restic), an off-host copy on the backup host
# over sftp, a SHA256SUMS manifest and a real restore test, made at every `lab up`.
set -eu
export RESTIC_PASSWORD_FILE=/root/.restic-password HOME=/root
local_repo=/var/backups/restic
mkdir -p /var/backups/lis /var/lib/tcmscan
/usr/local/sbin/lis-backup.sh
(cd /srv/lis-data && sha256sum -- *) >/var/backups/lis/SHA256SUMS
# restore test: restore the latest snapshot and verify it against the manifest
rm -rf /tmp/restore-test
restic -q -r "$local_repo" restore latest --target /tmp/restore-test
(cd /tmp/restore-test/srv/lis-data && sha256sum -c --quiet /var/backups/lis/SHA256SUMS)
rm -rf /tmp/restore-test
printf '[{"date": "%s", "set": "lis (%s)", "result": "ok"}]\n' "$(date -u +%Y-%m-%d)" "$local_repo" \
  >/var/lib/tcmscan/restore-tests.json
