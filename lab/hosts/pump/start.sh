# lab pump: telnet, anonymous FTP, HTTP console with admin/admin
printf 'admin:%s\n' "$(openssl passwd -apr1 -salt pumplab1 admin)" >/etc/nginx/htpasswd
chown -R root:root /srv/ftp && chmod -R a+rX,go-w /srv/ftp
/usr/sbin/inetd /etc/inetd.conf
/usr/sbin/vsftpd /etc/vsftpd.conf
nginx
