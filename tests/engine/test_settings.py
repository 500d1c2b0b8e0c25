"""One settings model (scanner/engine/settings.py): every scan setting reaches `tcmscan scan` and the job file
alike, with the names, defaults and validation pinned here; and one Scope value for targets, the check
context, resuming jobs and the "same scope" look-up."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pytest

from scanner.cli.main import build_parser
from scanner.core.errors import UsageError
from scanner.core.models import Asset
from scanner.core.scope import Scope
from scanner.engine.scan import ScanSettings as ReExported
from scanner.engine.settings import SETTINGS, ScanSettings, Setting, from_args, settings_from_stored
from scanner.schedule.jobs import Job, load_config
from scanner.schedule.run import _same_settings, settings_for
from scanner.sdk.context import CheckContext, RunEnv
from scanner.store import Store
from tests.helpers import ROOT


def test_names_are_pinned():
    # (field, `tcmscan scan` flag, job-file key): renaming one breaks scripts and job files in hospitals.
    assert [(s.name, s.flag, s.key) for s in SETTINGS] == [
        ("targets", "", "targets"), ("scope", "--scope", "scope"), ("exclude", "--exclude", "exclude"),
        ("exclude_mac", "--exclude-mac", "exclude_mac"), ("inventory", "--inventory", "inventory"),
        ("profile", "--profile", "profile"), ("credentials", "--credentials", "credentials"),
        ("known_hosts", "--known-hosts", "known_hosts"), ("host_keys", "--host-keys", "host_keys"),
        ("ca_file", "--ca-file", "ca_file"),
        ("checks", "--checks", "checks"), ("extra_ports", "--ports", "ports"), ("workers", "--workers", "workers"),
        ("host_cap", "--host-cap", "host_cap"), ("vantage", "--vantage", "vantage"), ("ping", "--no-ping", "ping")]


def test_scan_settings_is_built_from_the_declaration():
    assert ReExported is ScanSettings
    assert [(f.name, f.default if f.default is not MISSING else f.default_factory()) for f in fields(ScanSettings)
            if f.name not in ("targets", "scope")] == [
        ("exclude", []), ("exclude_mac", []), ("inventory", None), ("profile", "tcm-2024-l3"),
        ("credentials", None), ("known_hosts", None), ("host_keys", "tofu"), ("ca_file", None), ("checks", None),
        ("extra_ports", []),
        ("workers", 16), ("host_cap", 4), ("vantage", "user"), ("ping", True)]
    a, b = ScanSettings(targets=["x"], scope=["y"]), ScanSettings(targets=["x"], scope=["y"])
    a.exclude.append("10.0.0.1")
    assert b.exclude == []                       # list defaults are not shared
    assert ScanSettings(targets=[], scope=[], ca_file="/ca.pem").check_options() == {"tls_ca_file": "/ca.pem"}


def test_cli_defaults_are_unchanged():
    args = build_parser().parse_args(["scan", "127.0.0.1", "--scope", "127.0.0.0/8"])
    assert asdict(from_args(args)) == {
        "targets": ["127.0.0.1"], "scope": ["127.0.0.0/8"], "exclude": [], "exclude_mac": [], "inventory": None,
        "profile": "tcm-2024-l3", "credentials": None, "known_hosts": None, "host_keys": "tofu", "ca_file": None,
        "checks": None,
        "extra_ports": [], "workers": 16, "host_cap": 4, "vantage": "user", "ping": True}


# -- every setting reachable from both surfaces ----------------------------------------------------------
def _sample(s: Setting, tmp: Path) -> object:
    """A valid value different from the default."""
    if s.type == "strs":
        return [f"{s.name}-a", f"{s.name}-b"]
    if s.type == "networks":
        return ["10.9.0.0/16", "10.8.0.1"]
    if s.type == "ports":
        return [8081, 10443]
    if s.type == "path":
        (tmp / f"{s.name}.file").write_text("x")
        return str(tmp / f"{s.name}.file")
    if s.type == "int":
        return s.bounds[1]
    if s.type == "bool":
        return not s.default
    return s.choices[-1] if s.choices else f"{s.name}-value"


def _argv(s: Setting, v: object) -> list[str]:
    if not s.flag:
        return list(v)
    if s.type == "bool":
        return [s.flag]
    if isinstance(v, list):
        return [x for item in v for x in (s.flag, str(item))]
    return [s.flag, str(v)]


def _toml(v: object) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)


def test_every_setting_reaches_the_scan_from_the_cli_and_from_a_job(tmp_path):
    values = {s.name: _sample(s, tmp_path) for s in SETTINGS}
    for s in SETTINGS:
        assert values[s.name] != s.default, s.name
    want = ScanSettings(**values)

    argv = ["scan"] + [x for s in SETTINGS for x in _argv(s, values[s.name])]
    assert from_args(build_parser().parse_args(argv)) == want

    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "all"\n' + "".join(f"{s.key} = {_toml(values[s.name])}\n" for s in SETTINGS))
    job = load_config(cfg).job("all")
    assert settings_for(job) == want
    assert {s.key: getattr(job, s.key) for s in SETTINGS} == {s.key: values[s.name] for s in SETTINGS}


def test_job_keys_are_not_the_jobs_own_fields():
    own = {f.name for f in fields(Job)}
    assert own == {"name", "scan", "db", "report", "notify", "retention"}
    assert not own & {s.key for s in SETTINGS}


def test_every_job_key_is_documented_in_the_example():
    text = (ROOT / "docs" / "jobs.example.toml").read_text(encoding="utf-8")
    for s in SETTINGS:
        assert f"\n{s.key} = " in text or f"\n# {s.key} = " in text, s.key


# -- ca_file in a scheduled job ------------------------------------------------------------------------------
def test_a_scheduled_job_passes_its_ca_file_to_the_scan(tmp_path):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "hospital-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\n'
                   'ca_file = "pki/hospital-ca.pem"\n')                     # relative to the config file
    settings = settings_for(load_config(cfg).job("n"))
    assert settings.ca_file == str(tmp_path / "pki" / "hospital-ca.pem")
    assert settings.check_options() == {"tls_ca_file": str(tmp_path / "pki" / "hospital-ca.pem")}


def test_a_missing_ca_file_refuses_the_job(tmp_path):
    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\nca_file = "ca.pem"\n')
    with pytest.raises(UsageError) as e:
        load_config(cfg)
    assert str(e.value) == f"{cfg}: job 'n': field 'ca_file': {tmp_path}/ca.pem does not exist"


@pytest.mark.parametrize("line, error", [
    ("host_cap = 0", "field 'host_cap': must be 1-64"),
    ("workers = 300", "field 'workers': must be 1-256"),
    ('exclude = ["10.0.0.300"]', "field 'exclude': '10.0.0.300' is not an address or CIDR"),
    ("ports = [0]", "field 'ports': must be a list of port numbers 1-65535"),
    ('vantage = "lobby"', "field 'vantage': must be one of internet, dmz, user, server, management, clinical"),
    ('ping = "no"', "field 'ping': must be a bool, not str 'no'"),
])
def test_job_settings_are_validated_as_declared(tmp_path, line, error):
    cfg = tmp_path / "jobs.toml"
    cfg.write_text(f'[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\n{line}\n')
    with pytest.raises(UsageError) as e:
        load_config(cfg)
    assert str(e.value) == f"{cfg}: job 'n': {error}"


def test_job_attributes_read_and_set_the_scan_settings(tmp_path):
    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\nports = [8081]\n')
    job = load_config(cfg).job("n")
    assert (job.ports, job.scan.extra_ports, job.ping, job.checks) == ([8081], [8081], True, None)
    job.known_hosts = "/var/lib/tcmscan/known_hosts"          # what run_job does when the job names none
    assert settings_for(job).known_hosts == "/var/lib/tcmscan/known_hosts"
    settings_for(job).extra_ports.append(9)                   # a copy: the loaded job stays as written
    assert job.ports == [8081]


# -- stored settings ---------------------------------------------------------------------------------------
def test_settings_stored_by_another_version_still_load():
    old = {"targets": ["10.0.0.1"], "scope": ["10.0.0.0/24"], "exclude": [], "workers": 4, "vantage": "server",
           "retired_setting": True}                                # no host_cap, ca_file; one since dropped
    s = settings_from_stored(old)
    assert (s.targets, s.workers, s.vantage, s.host_cap, s.ca_file) == (["10.0.0.1"], 4, "server", 4, None)


def test_a_job_resumes_its_scan_when_only_the_spelling_of_its_scope_changed(tmp_path):
    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24", "10.1.0.0/24"]\n'
                   'exclude = ["10.0.0.9"]\n')
    job = load_config(cfg).job("n")
    stored = asdict(settings_for(job))
    assert _same_settings(stored, job)
    assert _same_settings({**stored, "scope": ["10.1.0.7/24", "10.0.0.0/24"]}, job)
    stored_old = {k: v for k, v in stored.items() if k not in ("host_cap", "ca_file")}   # before they existed
    assert _same_settings(stored_old, job)
    assert not _same_settings({**stored, "scope": ["10.0.0.0/24"]}, job)
    assert not _same_settings({**stored, "exclude": []}, job)
    assert not _same_settings({**stored, "targets": ["10.0.0.2"]}, job)
    assert not _same_settings({**stored, "vantage": "dmz"}, job)
    assert _same_settings({**stored, "workers": 3}, job)            # not a reason to rescan


# -- the Scope value ---------------------------------------------------------------------------------------
def test_scope_parses_once_and_answers_contains():
    scope = Scope.parse(["10.0.0.0/24", "fd00::/64"], ["10.0.0.8/30"])
    assert [scope.contains(a) for a in ("10.0.0.1", "10.0.0.9", "10.0.1.1", "fd00::5", "not-an-ip")] == [
        True, False, False, True, False]
    assert (scope.texts, scope.exclude_texts, scope.describe()) == (("10.0.0.0/24", "fd00::/64"), ("10.0.0.8/30",),
                                                                    "10.0.0.0/24, fd00::/64")
    assert scope == Scope.parse(["fd00::1/64", "10.0.0.0/24"], ["10.0.0.8/30"])
    assert scope != Scope.parse(["10.0.0.0/24", "fd00::/64"])
    assert scope.same_allowlist(Scope.parse(["fd00::/64", "10.0.0.0/24"]))
    with pytest.raises(UsageError, match=r"^not a network address or CIDR: '10\.0\.0\.0/33'$"):
        Scope.parse(["10.0.0.0/33"])


def test_the_check_context_guards_with_the_scans_scope():
    env = RunEnv(scope=Scope.parse(["127.0.0.0/24"], ["127.0.0.9"]))
    ctx = CheckContext(asset=Asset(address="127.0.0.8"), service=None, check_id="t.t", env=env, timeout=5,
                       safe_mode=False)
    ctx.allow()
    with pytest.raises(RuntimeError, match="refused: 127.0.0.9 is outside the scan scope"):
        ctx.allow("127.0.0.9")
    with pytest.raises(RuntimeError, match="refused: 127.0.1.1 is outside the scan scope"):
        ctx.allow("127.0.1.1")
    assert RunEnv(scope=["127.0.0.0/24"]).scope == Scope.parse(["127.0.0.0/24"])   # texts are parsed


def _scan_row(scan_id: str, created: str, scope: list[str]) -> dict:
    return {"id": scan_id, "created": created, "started": created, "finished": created, "status": "done",
            "phase": "done", "targets": scope, "scope": scope, "exclude": [], "settings": {}, "inventory": {},
            "profile_id": "p", "profile_version": "1", "profile_sha256": "", "tool_version": "t",
            "check_versions": {}, "error": None}


def test_previous_scan_of_the_same_scope_ignores_order_and_spelling(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.create_scan(_scan_row("s1", "2024-01-01T00:00:00+00:00", ["10.0.0.0/24", "10.1.0.0/24"]))
    store.create_scan(_scan_row("s2", "2024-01-02T00:00:00+00:00", ["10.0.0.0/24"]))
    store.create_scan(_scan_row("s3", "2024-01-03T00:00:00+00:00", ["10.1.0.5/24", "10.0.0.0/24"]))
    store.db.execute("UPDATE scans SET scope = ? WHERE id = 's2'", ['"not a list"'])
    store.create_scan(_scan_row("s4", "2024-01-04T00:00:00+00:00", ["10.0.0.0/24"]))
    assert [store.previous_scan_id(s) for s in ("s1", "s3", "s4")] == [None, "s1", None]
