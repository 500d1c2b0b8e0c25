"""Secrets in backup jobs never leave the host: redact() per form (table below), what it must leave alone, and
the whole path — jobs planted on a host reached by a real OpenSSH sshd on loopback, a real `tcmscan scan` into a
real SQLite file, `tcmscan report` (html, json, csv, sarif), every command's stdout/stderr — grepped for a
distinct marker per form: zero hits.

The sshd's ForceCommand runs each command in a private mount namespace where an overlay puts the planted
cron/systemd files over this machine's /etc and /var/spool (read-only lower layers: nothing here is written)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from checks.backup._parse import redact
from checks.backup._redact import MASK
from tests.helpers import tcmscan

# (text, the same text redacted): one row per form a secret takes in a backup job
REDACTED = [
    ("sshpass -p s3cr rsync -a /srv b@h:/b", "sshpass -p *** rsync -a /srv b@h:/b"),
    ("sshpass -ps3cr scp f h:", "sshpass -p*** scp f h:"),
    ("curl -u backup:s3cr -T f ftp://h/", "curl -u backup:*** -T f ftp://h/"),
    ("curl --user=backup:s3cr https://h/", "curl --user=backup:*** https://h/"),
    ("curl -ubackup:s3cr https://h/", "curl -ubackup:*** https://h/"),
    ("curl -H 'Authorization: Bearer s3cr' https://h/", 'curl -H "Authorization: ***" https://h/'),
    ("tar cz /srv | openssl enc -aes-256-cbc -pass pass:s3cr -out x", "tar cz /srv | openssl enc -aes-256-cbc "
                                                                      "-pass pass:*** -out x"),
    ("openssl enc -d -passin pass:s3cr -in x", "openssl enc -d -passin pass:*** -in x"),
    ("openssl rsa -passout 'pass:a b c'", "openssl rsa -passout pass:***"),
    ("openssl enc -aes256 -k s3cr -in x", "openssl enc -aes256 -k *** -in x"),
    ("smbclient //h/bak -U backup%s3cr -c 'put x'", "smbclient //h/bak -U backup%*** -c 'put x'"),
    ("smbclient //h/bak s3cr -U backup", "smbclient //h/bak *** -U backup"),
    ("lftp -u backup,s3cr -e 'mirror -R /b /' h", "lftp -u backup,*** -e 'mirror -R /b /' h"),
    ("lftp -e 'open -u backup,s3cr h; mirror -R /b /'", 'lftp -e "open -u backup,*** h; mirror -R /b /"'),
    ("mysqldump -uroot -ps3cr emr > /b/emr.sql", "mysqldump -uroot -p*** emr > /b/emr.sql"),
    ("mysqldump --password=s3cr emr", "mysqldump --password=*** emr"),
    ("mysqldump -p'a b c' emr", "mysqldump -p*** emr"),
    ("mariadb-dump --password=\"a b c\" emr", "mariadb-dump --password=*** emr"),
    ("mariabackup --backup --password=s3cr", "mariabackup --backup --password=***"),
    ("gpg --batch --passphrase \"a b c\" -c x", "gpg --batch --passphrase *** -c x"),
    ("gpg --batch --passphrase 'a b c' -c x", "gpg --batch --passphrase *** -c x"),
    ("duplicity --password=s3cr /srv sftp://h/b", "duplicity --password=*** /srv sftp://h/b"),
    ("PGPASSWORD=s3cr pg_dump emr", "PGPASSWORD=*** pg_dump emr"),
    ("export RESTIC_PASSWORD='a b'; restic backup /srv", "export RESTIC_PASSWORD=***; restic backup /srv"),
    ("BORG_PASSPHRASE=s3cr borg create /b::x /srv", "BORG_PASSPHRASE=*** borg create /b::x /srv"),
    ("BORG_PASSCOMMAND='echo s3cr' borg list", "BORG_PASSCOMMAND=*** borg list"),
    ("MYSQL_PWD=s3cr mysqldump emr", "MYSQL_PWD=*** mysqldump emr"),
    ("RSYNC_PASSWORD=s3cr rsync -a /srv rsync://b@h/m", "RSYNC_PASSWORD=*** rsync -a /srv rsync://b@h/m"),
    ('Environment="RESTIC_PASSWORD=s3cr"', "Environment=RESTIC_PASSWORD=***"),
    ("rsync -a /srv rsync://backup:s3cr@h/m/", "rsync -a /srv rsync://backup:***@h/m/"),
    ("restic -r rest:https://u:s3cr@h:8000/r backup", "restic -r rest:https://u:***@h:8000/r backup"),
    ("pg_dump postgresql://u:s3cr@db/emr", "pg_dump postgresql://u:***@db/emr"),
    ("pg_dump 'host=db user=u password=s3cr dbname=emr'", 'pg_dump "host=db user=u password=*** dbname=emr"'),
    ("mount -t cifs -o username=u,password=s3cr,vers=3.0 //h/b /mnt", "mount -t cifs -o username=u,password=***,"
                                                                      "vers=3.0 //h/b /mnt"),
    ("expdp system/s3cr@ORCL directory=d dumpfile=x.dmp", "expdp system/***@ORCL directory=d dumpfile=x.dmp"),
    ("7z a -ps3cr /b/x.7z /srv", "7z a -p*** /b/x.7z /srv"),
    ("zip -r -P s3cr /b/x.zip /srv", "zip -r -P *** /b/x.zip /srv"),
    ("mongodump -u root -p s3cr --out /b", "mongodump -u root -p *** --out /b"),
    ("sqlcmd -S h -U sa -P s3cr -Q 'BACKUP DATABASE his'", "sqlcmd -S h -U sa -P *** -Q 'BACKUP DATABASE his'"),
    ("sh -c 'mysqldump -ps3cr emr | gzip > /b/x.gz'", 'sh -c "mysqldump -p*** emr | gzip > /b/x.gz"'),
    # a quoted word that starts with a secret assignment: its value may hold blanks, so all of it goes
    ("ssh db \"PGPASSWORD=s3cr pg_dump emr\" > /b/x", "ssh db PGPASSWORD=*** > /b/x"),
    ("ssh db \"cd /b && PGPASSWORD=s3cr pg_dump emr\"", 'ssh db "cd /b && PGPASSWORD=*** pg_dump emr"'),
    ("mount -o 'username=u,password=a b c' //h/b /mnt", "mount -o username=u,password=*** //h/b /mnt"),
    ("mysqldump \\\n  -ps3cr emr", "mysqldump \\\n  -p*** emr"),
    ("0 2 * * * root mysqldump -ps3cr emr # -pother", "0 2 * * * root mysqldump -p*** emr # -pother"),
    ("# backup: mysqldump -ps3cr emr", "# backup: mysqldump -p*** emr"),
    ("--password=s3cr", "--password=***"),                             # a lone word (a destination, a repo)
    ("PGPASSWORD=s3cr", "PGPASSWORD=***"),
    ("rest:https://u:s3cr@h/r", "rest:https://u:***@h/r"),
]

# what looks like a secret option but is not one: left exactly as written
UNCHANGED = [
    "rsync -pav /srv/ b@h:/b/",
    "tar -cpf /b/x.tar /srv",
    "tar -p -xf x.tar",
    "cp -p a b && rsync -p a b",
    "ssh -p 2222 backup@h",
    "mysqldump -p emr > /b/emr.sql",                                 # -p alone prompts
    "mysqldump --password emr",                                        # so does --password: emr is the database
    "pg_dump --password emr",                                          # -W/--password: prompt
    "pg_dump --no-password emr",
    "pg_dump -w -U postgres emr",
    "curl -u backup https://h/",                                       # no ':': curl prompts
    "lftp -u backup h",
    "smbclient //h/bak -U backup -c 'put x'",
    "openssl enc -pass env:BACKUP_PW -in x",
    "openssl enc -pass file:/root/pw -passin stdin -in x",
    "openssl enc -kfile /root/pw -in x",
    "restic --password-file /root/.restic-password -r /b backup /srv",
    "RESTIC_PASSWORD_FILE=/root/.restic-password restic backup /srv",
    "borg create --passphrase-fd 3 /b::x /srv",
    "sshpass -f /root/pw rsync -a /srv h:/b",
    "echo bypass compass -passive /srv/pass/x --compass",
    "rsync -a /srv rsync://backup@h/m/ sftp:user@host:/p https://h/x",
    "rman target / cmdfile=/b/full.rcv",
    "0 2 * * * root /usr/local/sbin/backup.sh >/var/log/backup.log 2>&1",
    "BACKUP_DIR=/var/backups KEEP=7 tar -czpf $BACKUP_DIR/x.tgz /srv",
]


@pytest.mark.parametrize(("text", "want"), REDACTED, ids=[t[:40] for t, _ in REDACTED])
def test_redact_each_form(text, want):
    assert redact(text) == want
    assert "s3cr" not in redact(text) and "a b c" not in redact(text)


@pytest.mark.parametrize("text", UNCHANGED, ids=[t[:40] for t in UNCHANGED])
def test_not_a_secret_is_left_alone(text):
    assert redact(text) == text


def test_redact_before_cutting():
    # a long command is redacted whole, then cut: the cut cannot split a secret out of its option
    text = "x " * 200 + "mysqldump -ps3cr emr"
    assert redact(text) == text[:300] and "s3cr" not in redact(text, limit=None)
    assert redact(text, limit=None).endswith("mysqldump -p*** emr")


def test_unbalanced_quotes_and_garbage_do_not_leak():
    assert redact("mysqldump --password='s3cr emr") == "mysqldump --password=***"
    assert redact('curl -u "b:s3cr') == "curl -u b:***"
    assert redact("sshpass -p") == "sshpass -p"


# ---------------------------------------------------------------- the whole path: host -> db -> report -> logs

SSHD = "/usr/sbin/sshd"
WRAPPER = """#!/bin/sh
exec unshare -m sh -c 'mount -t overlay overlay -o lowerdir={plant}/etc:/etc /etc &&
  mount -t overlay overlay -o lowerdir={plant}/var/spool:/var/spool /var/spool &&
  exec sh -c "$SSH_ORIGINAL_COMMAND"'
"""

# form -> the job line that carries its marker (each line runs a backup tool, so it is recorded as a job)
FORMS = {
    "sshpass": "sshpass -p {m} rsync -a /srv/his/ backup@10.9.9.9:/b/his/",
    "curl": "tar czf /var/backups/his.tgz /srv/his && curl -u backup:{m} -T /var/backups/his.tgz ftp://10.9.9.9/",
    "openssl-pass": "tar cz /srv/lis | openssl enc -aes-256-cbc -pass pass:{m} -out /var/backups/lis.tgz.enc",
    "openssl-passin": "tar cz /srv/pacs | openssl enc -aes-256-cbc -passin pass:{m} -out /var/backups/p.enc",
    "openssl-k": "tar cz /srv/ris | openssl enc -aes-256-cbc -k {m} -out /var/backups/ris.tgz.enc",
    "smbclient": "tar czf /var/backups/a.tgz /srv/a && smbclient //10.9.9.9/bak -U backup%{m} -c 'put a.tgz'",
    "lftp": "tar czf /var/backups/b.tgz /srv/b && lftp -u backup,{m} -e 'mirror -R /var/backups /' 10.9.9.9",
    "mysql-p": "mysqldump -uroot -p{m} emr > /var/backups/emr.sql",
    "mysql-password": "mysqldump --password={m} his > /var/backups/his.sql",
    "quoted-double": 'mysqldump emr | gpg --batch --passphrase "{m} a b" -c > /var/backups/emr.sql.gpg',
    "quoted-single": "pg_dump lis | gpg --batch --passphrase '{m} c d' -c > /var/backups/lis.sql.gpg",
    "pgpassword": "PGPASSWORD={m} pg_dump -h 127.0.0.1 lis > /var/backups/lis.sql",
    "restic-password": "RESTIC_PASSWORD={m} restic -r /var/backups/restic backup /srv",
    "borg-passphrase": "BORG_PASSPHRASE={m} borg create /var/backups/borg::x /srv",
    "url-rsync": "rsync -a /srv/pacs/ rsync://backup:{m}@10.9.9.9/pacs/",
    "url-restic": "restic -r rest:https://backup:{m}@10.9.9.9:8000/his backup /srv/his",
}


def _marker(form: str) -> str:
    return "Zq" + form.replace("-", "") + "Mk"


def _free(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@pytest.fixture
def planted_host(tmp_path):
    """A host whose cron.d, spool crontab, run-parts script and systemd unit carry one marker per form."""
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.skip("needs root (sshd, mount namespaces) and OpenSSH sshd")
    plant = tmp_path / "plant"
    (plant / "etc/cron.d").mkdir(parents=True)
    (plant / "etc/cron.daily").mkdir()
    (plant / "etc/systemd/system").mkdir(parents=True)
    (plant / "var/spool/cron/crontabs").mkdir(parents=True)
    sbin = plant / "sbin"
    sbin.mkdir()
    lines = [f"30 1 * * * root {line.format(m=_marker(form))}" for form, line in FORMS.items()]
    (plant / "etc/cron.d/tcmscan-test-backups").write_text("\n".join(lines) + "\n")
    # a root crontab in the spool, a run-parts script and a systemd unit: each names a remote destination
    # whose userinfo carries a marker, and the script (read by path) sets secret variables
    (plant / "var/spool/cron/crontabs/root").write_text(
        f"0 4 * * * rsync -a /srv/ris/ rsync://ris:{_marker('spool')}@10.9.9.8/ris/\n")
    script = sbin / "offsite.sh"
    script.write_text(f"#!/bin/sh\nexport BORG_PASSPHRASE='{_marker('script-env')}'\n"
                      f"RESTIC_REPOSITORY=rest:https://u:{_marker('script-url')}@10.9.9.7:8000/lis\n"
                      "restic backup /srv/lis\n")
    (plant / "etc/cron.d/tcmscan-test-offsite").write_text(f"15 2 * * * root {script}\n")
    (plant / "etc/cron.daily/tcmscan-test-daily").write_text(
        f"#!/bin/sh\nrsync -a /srv/emr/ rsync://emr:{_marker('daily')}@10.9.9.6/emr/\n")
    (plant / "etc/systemd/system/tcmscan-test-db.service").write_text(
        "[Service]\nType=oneshot\n"
        f"ExecStart=/bin/sh -c 'PGPASSWORD={_marker('systemd')} pg_dump emr > /var/backups/u.sql'\n")
    markers = [_marker(f) for f in [*FORMS, "spool", "script-env", "script-url", "daily", "systemd"]]

    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("hostkey", "clientkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=30)
    (d / "authorized_keys").write_text((d / "clientkey.pub").read_text())
    wrapper = d / "wrapper.sh"
    wrapper.write_text(WRAPPER.format(plant=plant))
    wrapper.chmod(0o755)
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    port = _free(address)
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {d}/sshd.pid\nForceCommand {wrapper}\nUseDNS no\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    try:
        for _ in range(100):
            try:
                socket.create_connection((address, port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield {"address": address, "port": port, "key": d / "clientkey", "markers": markers, "jobs": len(lines) + 4}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_no_marker_reaches_db_report_or_output(planted_host, tmp_path):
    h = planted_host
    out = tmp_path / "out"
    out.mkdir()
    creds = out / "creds.yaml"
    creds.write_text(f"credentials:\n  - {{match: {h['address']}, type: ssh, user: root, port: {h['port']}, "
                     f"key_file: {h['key']}}}\n")
    creds.chmod(0o600)
    inv = out / "inventory.yaml"
    inv.write_text(f"assets:\n  - {{address: {h['address']}, name: emr-db, role: EMR, class: server, "
                   "backup_required: true}\n")
    db = out / "scan.db"
    runs = [tcmscan("scan", h["address"], "--scope", f"{h['address']}/32", "--checks", "backup.catalogue",
                    "--credentials", str(creds), "--inventory", str(inv), "--known-hosts", str(out / "kh"),
                    "--ports", str(h["port"]), "--no-ping", db=db, check=True)]
    scan_id = runs[0].stdout.strip().splitlines()[-1]
    for fmt, lang in (("html,json,csv,sarif", "en"), ("html,json", "zh")):
        runs.append(tcmscan("report", scan_id, "--format", fmt, "--lang", lang, "--out", str(out / f"report-{lang}"),
                            db=db))
        assert runs[-1].returncode == 0, runs[-1].stderr
    runs.append(tcmscan("observations", scan_id, "--format", "json", db=db, check=True))
    runs.append(tcmscan("findings", scan_id, "--format", "json", db=db, check=True))

    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert db in files and any(p.suffix == ".html" for p in files)
    blobs = {str(p): p.read_bytes() for p in files}
    for i, r in enumerate(runs):
        blobs[f"run {i} stdout"] = r.stdout.encode()
        blobs[f"run {i} stderr"] = r.stderr.encode()
    hits = [(m, where) for m in h["markers"] for where, blob in blobs.items() if m.encode() in blob]
    assert hits == []

    # the jobs did flow all the way: every planted job is in the observation, redacted
    (obs,) = [o for o in json.loads(runs[-2].stdout) if o["key"] == "backup-sets"]
    jobs = obs["data"]["jobs"]
    assert len(jobs) == h["jobs"], "\n".join(j["source"] + " " + j["command"] for j in jobs)
    # every form, the spool crontab and the systemd unit (run-parts and script jobs are recorded by path)
    assert sum(MASK in j["command"] for j in jobs) == len(FORMS) + 2
    assert {r for j in jobs for r in j["restic_repositories"]} >= {"rest:https://u:***@10.9.9.7:8000/lis",
                                                                   "rest:https://backup:***@10.9.9.9:8000/his"}
    report = (out / "report-en" / "report.json").read_text(encoding="utf-8")
    assert "rsync://ris:***@10.9.9.8/ris/" in report                     # a redacted set name, in a finding

