# lab dc: Samba AD DC (Debian samba-ad-dc), provisioned at every start, with a weak domain policy and account plants
set -e
REALM=HOSPITAL.LAB; DOMAIN=TCMHOSP; BASE=DC=hospital,DC=lab
ADDR=$(ip -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}')
rm -f /etc/samba/smb.conf
rm -rf /var/lib/samba/private/* /var/lib/samba/sysvol /var/cache/samba/*
mkdir -p /var/log/samba /run/samba
# NetBIOS, DNS, NTP signing, KCC and winbind off: only Kerberos, RPC, LDAP/LDAPS, GC and SMB listen.
# TLS: the lab CA's certificate for dc (tls_cert ca-signed), TLS 1.2/1.3 with AEAD suites only.
samba-tool domain provision --realm=$REALM --domain=$DOMAIN --server-role=dc --dns-backend=NONE \
  --use-rfc2307 --adminpass='Lab#Dc-Admin-2024!x' --host-ip="$ADDR" --host-name=dc \
  --option="disable netbios = yes" --option="smb ports = 445" \
  --option="server services = -dns -nbt -winbindd -ntp_signd -kcc -dnsupdate" \
  --option="tls enabled = yes" --option="tls keyfile = /etc/nginx/tls/server.key" \
  --option="tls certfile = /etc/nginx/tls/server.crt" --option="tls cafile = " \
  --option="tls priority = NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA" \
  --option="load printers = no" --option="printcap name = /dev/null" \
  --option="log file = /var/log/samba/log.%m" --option="logging = file" >>/var/log/lab/provision.log 2>&1
# plant cleartext-simple-bind: simple binds, and SASL binds without signing, accepted without TLS
sed -i 's/^\[global\]$/[global]\n\tldap server require strong auth = no/' /etc/samba/smb.conf
# plant weak-domain-policy: no complexity, 6 characters, no history, no maximum age, no lockout
samba-tool domain passwordsettings set --complexity=off --min-pwd-length=6 --history-length=0 \
  --max-pwd-age=0 --account-lockout-threshold=0 >>/var/log/lab/provision.log 2>&1
# The scanner's read-only directory account (credentials file of `lab up`)
samba-tool user create audit 'Lab#Dc-Audit-2024!x' >>/var/log/lab/provision.log 2>&1
for u in zhangsan lisi guahao nursestation pacs-admin; do
  samba-tool user create $u 'Lab#Staff-2024!x' >>/var/log/lab/provision.log 2>&1
done
# plant admin-everyday-use: wangwu, a domain admin below, has a mailbox address (his everyday account)
samba-tool user create wangwu 'Lab#Staff-2024!x' --mail-address=wangwu@hospital.lab >>/var/log/lab/provision.log 2>&1
# plant never-expires: lisi;  plant extra-domain-admins: pacs-admin and wangwu
samba-tool user setexpiry lisi --noexpiry >>/var/log/lab/provision.log 2>&1
samba-tool group addmembers "Domain Admins" pacs-admin,wangwu >>/var/log/lab/provision.log 2>&1
# plant stale-account (zhangsan: last logon 2012-12-14) and no-password-required (guahao: PASSWD_NOTREQD),
# written offline into sam.ldb: samba-tool cannot set them
python3 /usr/local/lib/lab/plant_accounts.py $BASE <<PLANTS >>/var/log/lab/provision.log 2>&1
zhangsan lastLogonTimestamp 130000000000000000
guahao userAccountControl 0x20
PLANTS
# one process (plus the smbd it starts)
samba -D -M single
