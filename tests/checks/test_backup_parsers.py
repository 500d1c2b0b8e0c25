"""Parsers of what hosts and peers send us: golden inputs from the real tools, and hypothesis for garbage
(never raises, bounded time, "not assessed" with a reason instead of a guess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.backup import _parse as parse
from checks.backup.http_files import exposed, parse_head
from checks.backup.nfs import parse_showmount
from checks.backup.rsync import parse_listing

FAST = settings(max_examples=300, deadline=500)


@pytest.mark.skipif(not shutil.which("restic"), reason="needs restic")
def test_restic_golden(tmp_path):
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a").write_text("a")
    base = ["restic", "-q", "-r", str(tmp_path / "repo"), "--password-file", str(tmp_path / "pw")]
    subprocess.run([*base, "init"], check=True, capture_output=True)
    for _ in range(2):
        subprocess.run([*base, "backup", str(tmp_path / "src")], check=True, capture_output=True)
    out = subprocess.run([*base, "--no-lock", "--no-cache", "--json", "snapshots"], check=True,
                         capture_output=True, text=True).stdout
    cat = parse.restic_snapshots(out)
    newest = max(s["time"] for s in json.loads(out))
    assert isinstance(cat, parse.Catalogue)
    assert (cat.count, cat.paths) == (2, [str(tmp_path / "src")])
    assert cat.newest == parse.iso(parse.parse_time(newest))


@pytest.mark.skipif(not shutil.which("borg"), reason="needs borgbackup")
def test_borg_golden(tmp_path):
    env = {**os.environ, "BORG_PASSPHRASE": "", "BORG_BASE_DIR": str(tmp_path / "b")}
    (tmp_path / "src").mkdir()
    subprocess.run(["borg", "init", "-e", "none", str(tmp_path / "r")], check=True, capture_output=True, env=env)
    subprocess.run(["borg", "create", f"{tmp_path}/r::a1", str(tmp_path / "src")], check=True, capture_output=True,
                   env=env)
    out = subprocess.run(["borg", "list", "--json", "--bypass-lock", str(tmp_path / "r")], check=True,
                         capture_output=True, text=True, env=env).stdout
    cat = parse.borg_list(out, "+0800")
    assert isinstance(cat, parse.Catalogue)
    t = json.loads(out)["archives"][0]["time"]
    assert (cat.count, cat.encryption) == (1, "none")
    assert cat.newest == parse.iso(parse.parse_time(t + "+08:00"))


@pytest.mark.parametrize("text,reason", [
    ("{not json", "restic snapshots output is not JSON (corrupt, truncated or an unknown restic version)"),
    ('{"snapshots": []}', "restic snapshots output is not a JSON list (unknown restic version?)"),
    ('[{"when": "2024-01-01"}]', "restic snapshot entries lack 'time' (unknown restic version?)"),
    ('[{"time": "yesterday"}]', "unreadable snapshot time 'yesterday'"),
    ("[" * 100000, "restic snapshots output is not JSON (corrupt, truncated or an unknown restic version)"),
])
def test_restic_bad_catalogues(text, reason):
    assert parse.restic_snapshots(text) == parse.Problem(reason)


def test_huge_catalogue_is_refused_not_parsed():
    assert parse.restic_snapshots("[" + " " * parse.MAX_PARSE + "]") == parse.Problem(
        "catalogue larger than 4 MiB: not parsed")


def test_unknown_future_restic_fields_still_parse():
    text = json.dumps([{"time": "2030-01-01T00:00:00.123456789+08:00", "program_version": "restic 9.9",
                        "summary": {"x": 1}, "paths": ["/srv"], "hostname": "h"}])
    cat = parse.restic_snapshots(text)
    assert cat == parse.Catalogue(count=1, newest="2029-12-31T16:00:00Z", encryption="repository",
                                  hosts=["h"], paths=["/srv"])


@FAST
@given(st.text(max_size=2000))
def test_catalogue_parsers_never_raise(text):
    for fn in (parse.restic_snapshots, parse.borg_list, parse.manifest_entries, parse.borg_config,
               parse.check_output, parse.restore_tests, parse_showmount):
        fn(text)
    parse.job_info(text, ["restic", "rsync", "borg"], ["sftp:"])
    parse.redact(text)


@FAST
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                    max_leaves=40))
def test_json_shaped_garbage(doc):
    text = json.dumps(doc)
    assert isinstance(parse.restic_snapshots(text), parse.Catalogue | parse.Problem)
    assert isinstance(parse.borg_list(text), parse.Catalogue | parse.Problem)
    recs, problems = parse.restore_tests(text)
    assert isinstance(recs, list) and isinstance(problems, list)


def test_restore_record_format():
    recs, problems = parse.restore_tests(json.dumps([
        {"date": "2025-03-01", "set": "emr", "result": "ok", "by": "张三"},
        {"date": "2025-03-02T10:00:00+08:00", "set": "his", "result": "failed"},
        {"date": "soon", "set": "x", "result": "ok"}]))
    assert recs == [{"date": "2025-03-01T00:00:00Z", "set": "emr", "result": "ok", "by": "张三"},
                    {"date": "2025-03-02T02:00:00Z", "set": "his", "result": "failed", "by": ""}]
    assert problems == ["entry 2: needs an ISO 'date' and 'result' ok|failed"]


def test_redact_hides_secrets():
    line = ("mysqldump -uroot -pS3cret emr | gzip; RESTIC_PASSWORD=abc restic -r rest:https://u:pw@h/r backup; "
            "borg --passphrase=zz")
    out = parse.redact(line)
    for secret in ("S3cret", "abc", ":pw@", "zz"):
        assert secret not in out


def test_job_info_destinations():
    text = ("export RESTIC_REPOSITORY=s3:s3.example/bucket\nrsync -az /var/backups/ backup@10.77.0.30:/srv/x/\n"
            "rclone sync /var/backups remote:bucket\nborg create ssh://b@host/./repo::{now} /srv\n"
            "rsync -a /srv /mnt/usb/\n")
    info = parse.job_info(text, ["restic", "rsync", "rclone", "borg"], ["sftp:", "s3:"])
    assert info.tools == ["borg", "rclone", "rsync"]
    assert info.remote_destinations == ["backup@10.77.0.30:/srv/x/", "remote:bucket", "s3:s3.example/bucket",
                                        "ssh://b@host/./repo"]
    assert [parse.remote_host(d) for d in info.remote_destinations] == ["10.77.0.30", "remote", "s3.example",
                                                                        "host"]


def test_rsync_listing():
    assert parse_listing("@RSYNCD: 32.0 sha512 md5", ["Welcome", "", "backups        \tnightly", "@RSYNCD: EXIT"]) == {
        "protocol": "32.0", "listed": True, "modules": ["backups"], "complete": True, "error": ""}
    assert parse_listing("@RSYNCD: 31.0", ["@RSYNCD: EXIT"])["listed"] is False


@FAST
@given(st.text(max_size=100), st.lists(st.text(max_size=200), max_size=50))
def test_rsync_listing_garbage(greeting, lines):
    try:
        r = parse_listing(greeting, lines)
    except ValueError:
        return
    assert len(r["modules"]) <= 500 and all(len(m) <= 128 for m in r["modules"])


@FAST
@given(st.binary(max_size=3000))
def test_http_head_garbage(raw):
    r = parse_head(raw)
    assert r is None or 0 <= r["status"] <= 999


def test_http_exposure_logic():
    catch_all = {"status": 200, "type": "text/html", "length": 500}
    dump = {"status": 200, "type": "application/octet-stream", "length": 10}
    assert exposed(dump, {"status": 404, "type": "text/html", "length": 100})
    assert not exposed({"status": 200, "type": "text/html", "length": 500}, catch_all)
    assert not exposed(None, None)


def test_showmount():
    assert parse_showmount("/srv/backups *\n/srv/his 10.77.0.30,10.77.0.31\n") == [
        {"path": "/srv/backups", "clients": ["*"]}, {"path": "/srv/his", "clients": ["10.77.0.30", "10.77.0.31"]}]
