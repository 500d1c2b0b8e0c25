# lab core-switch services (run by init.sh inside the host)
ssh-keygen -q -t rsa -b 1024 -N '' -f /etc/ssh/ssh_host_rsa1024_key
rm -f /etc/ssh/ssh_host_ecdsa_key* /etc/ssh/ssh_host_ed25519_key* /etc/ssh/ssh_host_rsa_key*
/usr/sbin/snmpd -Lf /var/log/lab/snmpd.log -u Debian-snmp -g Debian-snmp -C -c /etc/snmp/snmpd.conf -p /run/snmpd.pid
/usr/sbin/inetd /etc/inetd.conf
