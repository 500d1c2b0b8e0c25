"""The job config: what a good file gives, and one clear line for each kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.core.errors import UsageError
from scanner.schedule.jobs import load_config
from tests.helpers import ROOT, tcmscan

GOOD = """
data_dir = "state"
[[job]]
name = "nightly"
targets = ["10.77.0.0/24"]
scope = ["10.77.0.0/24"]
exclude = ["10.77.0.1"]
checks = ["ports.open", "tls"]
credentials = "creds.yaml"
[job.report]
formats = ["html", "pdf", "sarif"]
langs = ["zh", "en"]
sign_key = "keys/k.pem"
passphrase_file = "keys/pass"
[job.notify]
min_severity = "medium"
on_fixed = false
webhook = [{url = "https://hooks.hospital.test/tcmscan", headers = {Authorization = "Bearer x"}}]
email = {host = "smtp.hospital.test", from = "tcmscan@hospital.test", to = ["sec@hospital.test"], user = "scanner", password_file = "smtp.pw"}
syslog = {address = "udp://127.0.0.1:514", facility = "local4"}
[job.retention]
days = 90
"""


def _write(tmp: Path, text: str) -> Path:
    for f in ("creds.yaml", "keys/k.pem", "keys/pass", "smtp.pw"):
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp / f).write_text("x")
    p = tmp / "jobs.toml"
    p.write_text(text)
    return p


def test_good_config(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    j = cfg.job("nightly")
    assert cfg.data_dir == str(tmp_path / "state")
    assert (j.targets, j.scope, j.exclude, j.checks) == (["10.77.0.0/24"], ["10.77.0.0/24"], ["10.77.0.1"],
                                                         ["ports.open", "tls"])
    assert j.credentials == str(tmp_path / "creds.yaml")              # relative to the config file
    assert (j.report.formats, j.report.langs, j.report.sign_key) == (["html", "pdf", "sarif"], ["zh", "en"],
                                                                     str(tmp_path / "keys/k.pem"))
    assert (j.notify.min_severity, j.notify.on_fixed, j.notify.webhook[0].headers) == ("medium", False,
                                                                                       {"Authorization": "Bearer x"})
    e = j.notify.email
    assert (e.host, e.port, e.starttls, e.to, e.password_file) == ("smtp.hospital.test", 587, True,
                                                                   ["sec@hospital.test"], str(tmp_path / "smtp.pw"))
    assert (j.notify.syslog.address, j.notify.syslog.facility) == ("udp://127.0.0.1:514", "local4")
    assert (j.retention.keep_scans, j.retention.days) == (None, 90)


def test_example_config_in_docs_is_valid():
    cfg = load_config(ROOT / "docs" / "jobs.example.toml")
    assert sorted(cfg.jobs) == ["lab-nightly", "weekly-full"]


BAD = [
    ('[[job]]\nname = "a b"\ntargets=["1.2.3.4"]\nscope=["1.2.3.4"]\n',
     "{p}: [[job]] number 1: field 'name' must be 1-64 letters, digits, '-' or '_' starting with a letter or digit "
     "(got 'a b')"),
    ('[[job]]\nname = "n"\nscope=["10.0.0.0/8"]\n', "{p}: job 'n': field 'targets': is required"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.0/33"]\n',
     "{p}: job 'n': field 'scope': '10.0.0.0/33' is not an address or CIDR"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\ntragets=1\n',
     "{p}: job 'n': field 'tragets': unknown field"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\nworkers=true\n',
     "{p}: job 'n': field 'workers': must be an int, not bool 'True'"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.notify]\nmin_severity="urgent"\n',
     "{p}: job 'n': field 'notify.min_severity': must be one of info, low, medium, high, critical"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.notify]\nwebhook=[{url="ftp://x/"}]\n',
     "{p}: job 'n': field 'notify.webhook[0].url': must be an http:// or https:// URL"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.notify.email]\nhost="h"\nfrom="a@h"\n'
     'to=["b@h"]\nuser="u"\npassword="hunter2"\n',
     "{p}: job 'n': field 'notify.email.password': unknown field (secrets go in a file: use password_file / "
     "passphrase_file)"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.notify.email]\nhost="h"\nfrom="a@h"\n'
     'to=["b@h"]\nuser="u"\npassword_file="pw"\nstarttls=false\n',
     "{p}: job 'n': field 'notify.email.starttls': must be true when a password is used (it would cross the "
     "network in clear)"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.report]\nformats=["docx"]\n',
     "{p}: job 'n': field 'report.formats': unknown format 'docx' (choose from html, pdf, json, csv, sarif)"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\ncredentials="missing.yaml"\n',
     "{p}: job 'n': field 'credentials': {d}/missing.yaml does not exist"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.retention]\nkeep_scans=0\n',
     "{p}: job 'n': field 'retention.keep_scans': must be at least 1 (the latest complete scan is always kept)"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[job.notify.syslog]\naddress="loghost"\n',
     "{p}: job 'n': field 'notify.syslog.address': 'loghost' is neither a socket path nor udp://HOST:PORT or "
     "tcp://HOST:PORT"),
    ('[[job]]\nname = "n"\ntargets=["10.0.0.1"]\nscope=["10.0.0.1"]\n[[job]]\nname = "n"\ntargets=["1.1.1.1"]\n'
     'scope=["1.1.1.1"]\n', "{p}: job 'n' is defined twice"),
    ('[[job]\nname = "n"\n', "job config {p} is not valid TOML: Expected ']]' at the end of an array declaration "
                             "(at line 1, column 6)"),
]


@pytest.mark.parametrize("text, line", BAD)
def test_bad_config_one_line(tmp_path, text, line):
    p = tmp_path / "jobs.toml"
    p.write_text(text)
    (tmp_path / "pw").write_text("x")
    with pytest.raises(UsageError) as e:
        load_config(p)
    assert str(e.value) == line.format(p=p, d=tmp_path)


def test_unreadable_config_via_cli(tmp_path):
    cases = [(tmp_path / "absent.toml",
              "tcmscan: job config {p} does not exist (see docs/jobs.example.toml; --config FILE)"),
             (tmp_path, "tcmscan: job config {p} is a directory")]
    latin = tmp_path / "latin1.toml"
    latin.write_bytes(b'[[job]]\nname = "caf\xe9"\n')
    cases.append((latin, "tcmscan: job config {p} is not UTF-8 text"))
    for path, line in cases:
        for args in (["run", "nightly"], ["schedule", "add", "nightly", "--cron", "0 2 * * *", "--print"]):
            p = tcmscan(*args, "--config", str(path))
            assert (p.returncode, p.stderr.strip()) == (2, line.format(p=path)), (args, p.stderr)


def test_unknown_job_via_cli(tmp_path):
    cfg = _write(tmp_path, GOOD)
    p = tcmscan("run", "nope", "--config", str(cfg))
    assert (p.returncode, p.stderr.strip()) == (2, f"tcmscan: no job 'nope' in {cfg} (jobs: nightly)")
    assert not (tmp_path / "state").exists()                      # refused before anything was created


def test_a_job_config_nested_too_deep_is_one_line(tmp_path):
    # tomllib recurses once per level: without the guard this is a RecursionError traceback
    p = tmp_path / "jobs.toml"
    p.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UsageError) as e:
        load_config(p)
    assert str(e.value) == f"job config {p} nests too deep"
