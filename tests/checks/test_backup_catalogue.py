"""backup.catalogue against real restic and borg repositories, dump files and manifests in a tmp tree,
then judged by rules/backup.yaml through the real evaluator."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from checks.backup.catalogue import catalogue
from scanner.assess.baseline import load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, Observation
from tests.checks.backup_helpers import backup_profile, local_shell

pytestmark = pytest.mark.skipif(not (shutil.which("restic") and shutil.which("borg")),
                                reason="needs restic and borgbackup (apt-get install restic borgbackup)")
DAY = 86400


def _age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def _run(*cmd: str, env: dict | None = None) -> None:
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})}, timeout=120)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory) -> Path:
    """Like the lab's hardened host: restic local repo + sftp off-host copy in a cron job, restore record."""
    r = tmp_path_factory.mktemp("hardened")
    (r / "srv/lis-data").mkdir(parents=True)
    (r / "srv/lis-data/results.csv").write_text("id,result\n1,ok\n")
    (r / "root").mkdir()
    (r / "root/.restic-password").write_text("lab-secret-pw\n")
    repo = r / "var/backups/restic"
    pw = str(r / "root/.restic-password")
    _run("restic", "-q", "-r", str(repo), "--password-file", pw, "init")
    _run("restic", "-q", "-r", str(repo), "--password-file", pw, "backup", str(r / "srv/lis-data"))
    (r / "usr/local/sbin").mkdir(parents=True)
    (r / "usr/local/sbin/lis-backup.sh").write_text(
        "#!/bin/sh\nexport RESTIC_PASSWORD_FILE=/root/.restic-password\nlocal_repo=/var/backups/restic\n"
        "remote_repo=sftp:restic@10.77.0.30:/srv/restic/hardened\n"
        "restic -q -r \"$local_repo\" backup /srv/lis-data\nrestic -q -r \"$remote_repo\" backup /srv/lis-data\n")
    (r / "etc/cron.d").mkdir(parents=True)
    (r / "etc/cron.d/lis-backup").write_text("30 1 * * * root /usr/local/sbin/lis-backup.sh\n")
    (r / "var/lib/tcmscan").mkdir(parents=True)
    (r / "var/lib/tcmscan/restore-tests.json").write_text(json.dumps(
        [{"date": dt.date.today().isoformat(), "set": "lis (/var/backups/restic)", "result": "ok", "by": "ops"}]))
    return r


@pytest.fixture(scope="module")
def emr(tmp_path_factory) -> Path:
    """Like the lab's emr-db: stale plain .sql.gz dumps, local only; plus Debian's own /var/backups files."""
    r = tmp_path_factory.mktemp("emr")
    d = r / "var/backups/emr"
    d.mkdir(parents=True)
    for age in (3, 4, 5):
        f = d / f"emr-2024010{age}-0200.sql.gz"
        f.write_bytes(gzip.compress(b"-- dump\n"))
        _age(f, age)
    (r / "var/backups/passwd.bak").write_text("root:x:0:0::/root:/bin/sh\n")   # dpkg housekeeping, ignored
    return r


def _facts(root: Path) -> dict:
    return catalogue(local_shell, knowledge()["backup_tools"], root=str(root), own_addresses={"10.77.0.50"})


def test_hardened_facts(hardened):
    data = _facts(hardened)
    assert [s["name"] for s in data["sets"]] == ["restic:/var/backups/restic"]
    s = data["sets"][0]
    assert (s["encrypted"], s["off_host"], s["integrity"], s["snapshots"]) == (True, True, "builtin", 1)
    assert s["last_backup_source"] == "restic snapshots --json"
    assert s["off_host_copies"] == ["sftp:restic@10.77.0.30:/srv/restic/hardened"]
    assert s["last_restore_test"] == dt.date.today().isoformat() + "T00:00:00Z"
    assert s["writable_by_production"] is True and s["protected_copy"] is None
    assert data["tools"] == ["restic"]
    assert data["jobs"] == [{"source": "/etc/cron.d/lis-backup",
                             "command": "30 1 * * * root /usr/local/sbin/lis-backup.sh", "tools": ["restic"],
                             "remote_destinations": ["sftp:restic@10.77.0.30:/srv/restic/hardened"],
                             "restic_repositories": ["/var/backups/restic",
                                                     "sftp:restic@10.77.0.30:/srv/restic/hardened"]}]
    assert "lab-secret-pw" not in json.dumps(data)


def test_restic_without_password_reads_metadata(hardened, tmp_path):
    r = tmp_path / "nopw"
    shutil.copytree(hardened / "var", r / "var")
    data = _facts(r)
    s = data["sets"][0]
    assert s["encrypted"] is True and s["snapshots"] == 1
    assert s["last_backup_source"] == "mtime of the newest file in snapshots/ (catalogue not read)"
    assert s["notes"] == ["no readable restic password file named by a job or at a well-known place: "
                          "snapshot list not read"]


def test_emr_facts(emr):
    data = _facts(emr)
    assert [s["name"] for s in data["sets"]] == ["files:/var/backups/emr"]
    s = data["sets"][0]
    assert (s["encrypted"], s["off_host"], s["integrity"], s["snapshots"]) == (False, False, "missing", 3)
    assert s["files"] == ["emr-20240103-0200.sql.gz", "emr-20240104-0200.sql.gz", "emr-20240105-0200.sql.gz"]
    age_h = (time.time() - dt.datetime.fromisoformat(s["last_backup"].replace("Z", "+00:00")).timestamp()) / 3600
    assert 71 < age_h < 73
    assert (data["jobs"], data["restore_tests"], s["last_restore_test"]) == ([], [], None)


def test_manifests_verified_and_mismatch(tmp_path):
    d = tmp_path / "var/backups/db"
    d.mkdir(parents=True)
    good, bad = d / "a.sql.gpg", d / "b.sql.gpg"
    good.write_bytes(b"aaaa")
    bad.write_bytes(b"bbbb")
    (d / "SHA256SUMS").write_text(f"{hashlib.sha256(b'aaaa').hexdigest()}  a.sql.gpg\n"
                                  f"{hashlib.sha256(b'tampered').hexdigest()}  b.sql.gpg\n")
    data = _facts(tmp_path)
    assert data["manifests"] == [{"path": "/var/backups/db/SHA256SUMS", "status": "mismatch", "algorithm": "sha256",
                                  "entries": 2, "failed": ["b.sql.gpg"], "missing": [], "skipped": [], "bytes": 8}]
    assert data["sets"][0]["integrity"] == "mismatch" and data["sets"][0]["encrypted"] is True
    (d / "SHA256SUMS").write_text(f"{hashlib.sha256(b'aaaa').hexdigest()}  a.sql.gpg\n"
                                  f"{hashlib.sha256(b'bbbb').hexdigest()}  b.sql.gpg\n")
    assert _facts(tmp_path)["sets"][0]["integrity"] == "verified"


def test_manifest_too_large_is_not_verified(tmp_path, monkeypatch):
    from checks.backup import _collect as collect
    monkeypatch.setattr(collect, "VERIFY_BUDGET", 3)
    d = tmp_path / "backup"
    d.mkdir()
    (d / "x.tar.gz").write_bytes(b"xxxx")
    (d / "x.tar.gz.sha256").write_text(hashlib.sha256(b"xxxx").hexdigest() + "  x.tar.gz\n")
    data = _facts(tmp_path)
    assert data["manifests"][0]["status"] == "too-large"
    assert data["sets"][0]["integrity"] == "unverified"


def test_borg_repo_with_and_without_passphrase(tmp_path):
    repo = tmp_path / "srv/borg/lis"
    pw = tmp_path / "root/.borg-pass"
    pw.parent.mkdir(parents=True)
    pw.write_text("borg-secret\n")
    env = {"BORG_PASSPHRASE": "borg-secret", "BORG_BASE_DIR": str(tmp_path / "borgbase")}
    (tmp_path / "src").mkdir()
    (tmp_path / "src/f").write_text("x")
    repo.parent.mkdir(parents=True)
    _run("borg", "init", "-e", "repokey", str(repo), env=env)
    _run("borg", "create", f"{repo}::one", str(tmp_path / "src"), env=env)
    # no job names the passphrase: encryption from the repo config, time from the last transaction
    s = _facts(tmp_path)["sets"][0]
    assert (s["name"], s["encrypted"], s["snapshots"]) == ("borg:/srv/borg/lis", True, None)
    assert s["last_backup_source"] == "mtime of the last borg transaction"
    # a job with BORG_PASSCOMMAND: the catalogue itself
    (tmp_path / "etc/cron.d").mkdir(parents=True)
    (tmp_path / "etc/cron.d/borg").write_text(
        "0 2 * * * root BORG_PASSCOMMAND='cat /root/.borg-pass' borg create /srv/borg/lis::{now} /srv\n")
    os.environ["BORG_BASE_DIR"] = env["BORG_BASE_DIR"]
    try:
        s = _facts(tmp_path)["sets"][0]
    finally:
        del os.environ["BORG_BASE_DIR"]
    assert (s["encrypted"], s["snapshots"], s["last_backup_source"]) == (True, 1, "borg list --json")
    assert s["encryption_basis"] == "borg encryption mode repokey" and s["off_host"] is False


def test_no_backups_at_all(tmp_path):
    data = _facts(tmp_path)
    assert (data["sets"], data["jobs"], data["tools"], data["restore_tests"]) == ([], [], [], [])


def _judge(data: dict, tmp_path: Path, **extra) -> set[str]:
    profile = load_profile(str(backup_profile(tmp_path)))
    asset = Asset(address="10.77.0.50", name="h", cls="server", role="LIS", extra={"backup_required": True, **extra})
    obs = [Observation("backup.catalogue", asset.address, None, "backup-sets", data)]
    attempts = [{"check_id": "backup.catalogue", "address": asset.address, "status": "completed"}]
    found, _ = evaluate_scan(profile, [asset], attempts, obs)
    return {f.rule_id for f in found}


def test_rules_on_emr_like_host(emr, tmp_path):
    assert _judge(_facts(emr), tmp_path) == {"backup.stale", "backup.no-offsite", "backup.unencrypted",
                                             "backup.no-integrity", "backup.no-restore-test",
                                             "backup.writable-store"}


def test_rules_on_hardened_like_host(hardened, tmp_path):
    data = _facts(hardened)
    assert _judge(data, tmp_path) == {"backup.writable-store"}     # nothing immutable observable
    assert _judge(data, tmp_path, backup_immutable_copy="append-only sftp on backup host") == set()


def test_rules_on_host_without_backups(tmp_path):
    assert _judge(_facts(tmp_path), tmp_path) == {"backup.missing"}


def test_remote_only_job_is_a_set_with_unknown_time(tmp_path):
    (tmp_path / "etc/cron.d").mkdir(parents=True)
    (tmp_path / "etc/cron.d/pacs").write_text(
        "0 3 * * * root rsync -a --delete /srv/pacs/ backup@10.77.0.30:/srv/backups/pacs/\n")
    data = _facts(tmp_path)
    assert [(s["name"], s["remote"], s["off_host"], s["last_backup"], s["encrypted"]) for s in data["sets"]] == [
        ("backup@10.77.0.30:/srv/backups/pacs/", True, True, None, None)]
    assert data["sets"][0]["last_backup_source"] == ("remote destination: not contacted "
                                                     "(no traffic from the audited host)")
    # an auditor cannot credit a backup they cannot date (params.unknown_is_stale, default true)
    assert _judge(data, tmp_path) == {"backup.stale", "backup.no-restore-test", "backup.writable-store"}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="chattr needs root")
def test_append_only_copy_is_a_protected_copy(hardened, tmp_path):
    r = tmp_path / "h"
    shutil.copytree(hardened, r, symlinks=True)
    repo = r / "var/backups/restic"
    if subprocess.run(["chattr", "+a", str(repo)], capture_output=True).returncode != 0:
        pytest.skip("file system without chattr attributes")
    try:
        data = _facts(r)
    finally:
        subprocess.run(["chattr", "-a", str(repo)], check=True)
    s = data["sets"][0]
    assert (s["protected_copy"], s["writable_by_production"]) == ("append-only attribute (chattr +a)", False)
    assert _judge(data, tmp_path) == set()
