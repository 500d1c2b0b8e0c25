# lab backup: rsync daemon with anonymous module; restic target for the hardened host
mkdir -p /srv/backups/his /srv/backups/emr
for d in 1 2 3; do
  day=$(date -u -d "$d days ago" +%Y%m%d)
  echo "synthetic HIS backup $day" | gzip >/srv/backups/his/his-$day.tar.gz
  echo "-- synthetic EMR dump $day" | gzip >/srv/backups/emr/emr-$day.sql.gz
done
useradd -m -d /home/restic -s /bin/sh -c "restic off-host target" restic 2>/dev/null
usermod -p '*' restic
mkdir -p /srv/restic /home/restic/.ssh
chown -R restic:restic /srv/restic /home/restic
chmod 700 /home/restic/.ssh
rsync --daemon --config=/etc/rsyncd.conf
