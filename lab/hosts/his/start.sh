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
