# lab emr-db: MariaDB + stale, unencrypted, local-only backups (planted)
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
/usr/sbin/mariadbd --user=mysql >>/var/log/lab/mariadb.log 2>&1 &
i=0
until mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; do
  i=$((i+1)); [ $i -gt 120 ] && { echo "mariadb did not start"; exit 1; }
  sleep 0.25
done
mariadb -uroot </usr/local/lib/lab/emr-schema.sql
mkdir -p /var/backups/emr
for age in 3 4 5; do
  f=/var/backups/emr/emr-$(date -u -d "$age days ago" +%Y%m%d)-0200.sql.gz
  mariadb-dump -uroot --databases emr | gzip -9 >"$f"
  touch -d "$age days ago" "$f"
done
