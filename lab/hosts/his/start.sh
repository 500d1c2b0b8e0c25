# lab HIS services and planted accounts (fixed salts: the same hashes on every up)
usermod -p "$(openssl passwd -6 -salt labhisroot 'Lab#His-2024-root')" root
# MD5-crypt hash ($1$) planted
useradd -m -s /bin/bash -c "HIS administrator" hisadmin
usermod -p "$(openssl passwd -1 -salt hislab01 'his123456')" hisadmin
# second UID 0 account planted
useradd -o -u 0 -g 0 -M -d /root -s /bin/bash -c "legacy vendor root" toor
usermod -p "$(openssl passwd -6 -salt toorlab1 'Toor#Vendor-2019')" toor
# empty password planted
useradd -m -s /bin/bash -c "ward nurse" nurse
passwd -d nurse
mkdir -p /run/redis && chown redis:redis /run/redis
runuser -u redis -- redis-server /etc/redis/redis.conf
nginx
# stale personal account planted: olddoc (UID >= 1000, bash, a SHA-512 password) whose password
# was last changed 200 days ago and whose last login (lastlog, from the scanner's address) was
# 200 days ago too: unused for more than 90 days.
useradd -m -s /bin/bash -c "retired physician" olddoc
usermod -p "$(openssl passwd -6 -salt olddoclab 'Old#Doc-2024-pw')" olddoc
chage -d "$(date -u -d '200 days ago' +%Y-%m-%d)" olddoc
python3 - "$(id -u olddoc)" <<'PY'
# struct lastlog (glibc x86_64): int32 ll_time, char ll_line[32], char ll_host[256]; record at uid * 292
import struct, sys, time
uid = int(sys.argv[1])
rec = struct.pack("=i32s256s", int(time.time()) - 200 * 86400, b"pts/0", b"10.77.0.1")
with open("/var/log/lastlog", "r+b") as f:
    f.seek(uid * len(rec))
    f.write(rec)
PY
# world-writable file under /etc planted
chmod 0666 /etc/his-app.conf
# /etc/shadow readable by everyone planted (last: the account tools above rewrite the file)
chmod 0644 /etc/shadow
