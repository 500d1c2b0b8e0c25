# lab db-sec: MariaDB (Debian) requiring TLS; root only over the local socket (Debian's unix_socket default)
mkdir -p /run/mysqld /etc/mysql/tls && chown mysql:mysql /run/mysqld
cp /etc/nginx/tls/server.crt /etc/nginx/tls/server.key /etc/mysql/tls/
chown -R mysql:mysql /etc/mysql/tls && chmod 600 /etc/mysql/tls/server.key
/usr/sbin/mariadbd --user=mysql >>/var/log/lab/mariadb.log 2>&1 &
i=0
until mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; do
  i=$((i+1)); [ $i -gt 120 ] && { echo "mariadb did not start"; exit 1; }
  sleep 0.25
done
# the scanner's login-only account (no privilege at all): TLS is required of it as of everyone
mariadb -uroot -e "CREATE USER 'tcmscan_audit'@'%' IDENTIFIED BY 'Lab#Db-Audit-2024!x'"
