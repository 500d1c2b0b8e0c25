# lab db-sec: MariaDB (Debian) requiring TLS; root only over the local socket (Debian's unix_socket default)
mkdir -p /run/mysqld /etc/mysql/tls && chown mysql:mysql /run/mysqld
cp /etc/nginx/tls/server.crt /etc/nginx/tls/server.key /etc/mysql/tls/
chown -R mysql:mysql /etc/mysql/tls && chmod 600 /etc/mysql/tls/server.key
/usr/sbin/mariadbd --user=mysql >>/var/log/lab/mariadb.log 2>&1 &
