#!/bin/sh
# lab hardened: the LIS backup job (cron.d/lis-backup). Encrypted restic backups, a local repository
# and an off-host copy on the backup server over sftp, then the local repository's history is made
# append-only (chattr +a) so production credentials cannot delete or rewrite past backups.
set -eu
export RESTIC_PASSWORD_FILE=/root/.restic-password HOME=/root
local_repo=/var/backups/restic
remote_repo=sftp:restic@10.77.0.30:/srv/restic/hardened
ssh_cmd="ssh -i /root/.ssh/id_backup -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/root/.ssh/known_hosts_backup restic@10.77.0.30 -s sftp"
restic -q -r "$local_repo" snapshots >/dev/null 2>&1 || restic -q -r "$local_repo" init
restic -q -r "$local_repo" backup --tag lis /srv/lis-data /etc/nginx
restic -q -o sftp.command="$ssh_cmd" -r "$remote_repo" snapshots >/dev/null 2>&1 \
  || restic -q -o sftp.command="$ssh_cmd" -r "$remote_repo" init
restic -q -o sftp.command="$ssh_cmd" -r "$remote_repo" backup --tag lis /srv/lis-data /etc/nginx
# Append-only goes on the repository directory and its config (config and the data/index/keys/snapshots
# entries cannot be removed or renamed) and on every stored file (none can be deleted, truncated or
# rewritten).  Not on data/, index/, snapshots/ or keys/ and their subdirectories: restic writes each
# new file under a temporary name and renames it into place, which an append-only directory refuses
# (EPERM), so the next run of this job would fail and leave undeletable *-tmp-* files behind.
chattr +a "$local_repo" "$local_repo/config"
find "$local_repo/data" "$local_repo/index" "$local_repo/snapshots" "$local_repo/keys" -type f \
  -exec chattr +a {} +
