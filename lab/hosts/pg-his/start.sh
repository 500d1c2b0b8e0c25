# lab pg-his: PostgreSQL (Debian postgresql) for the HIS reporting database, on 5432, no TLS
# plant pg-trust: pg_hba.conf `host all all 10.77.0.0/24 trust`: anyone on the user network logs in as anyone
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D=/var/lib/postgresql/lab
rm -rf $D && mkdir -p $D /run/postgresql && chown postgres:postgres $D /run/postgresql
runuser -u postgres -- $PGBIN/initdb -D $D -U postgres -A trust --no-sync >>/var/log/lab/initdb.log 2>&1
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all 10.77.0.0/24 trust\n' >$D/pg_hba.conf
runuser -u postgres -- $PGBIN/postgres -D $D -h '*' -p 5432 -c ssl=off >>/var/log/lab/postgres.log 2>&1 &
