"""Scan jobs from a TOML file (`[[job]]` tables). Every problem is one line naming the file, the job and the
field, raised as UsageError (exit 2) before anything runs. Secrets never live in this file: credentials,
SMTP passwords and key passphrases are file paths, read only when used."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.core.errors import UsageError
from scanner.core.vocab import LANGS, SEVERITIES
from scanner.engine.settings import SETTINGS, ScanSettings, Setting, problem

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")   # becomes part of unit and lock file names
REPORT_FORMATS = ("html", "pdf", "json", "csv", "sarif")
SYSLOG_FACILITIES = ("user", "daemon", "auth", "authpriv", "security", "local0", "local1", "local2", "local3",
                     "local4", "local5", "local6", "local7")
DEFAULT_KEEP_SCANS = 30


def default_config_path() -> Path:
    """/etc/tcmscan/jobs.toml for root (what the systemd units use), else ~/.config/tcmscan/jobs.toml."""
    if os.environ.get("TCMSCAN_JOBS"):
        return Path(os.environ["TCMSCAN_JOBS"])
    if os.geteuid() == 0:
        return Path("/etc/tcmscan/jobs.toml")
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "tcmscan" / "jobs.toml"


@dataclass
class Webhook:
    url: str
    headers: dict[str, str] = field(default_factory=dict)   # may hold a token: never logged or sent elsewhere


@dataclass
class Email:
    host: str
    from_addr: str
    to: list[str]
    port: int = 587
    starttls: bool = True
    user: str | None = None
    password_file: str | None = None
    ca_file: str | None = None          # trust anchor for a private CA (else the system store)


@dataclass
class Syslog:
    address: str = "/dev/log"           # a socket path, or udp://HOST:PORT / tcp://HOST:PORT
    facility: str = "user"


@dataclass
class NotifyConfig:
    min_severity: str = "high"
    on_fixed: bool = True
    webhook: list[Webhook] = field(default_factory=list)
    email: Email | None = None
    syslog: Syslog | None = None
    timeout: float = 10.0               # seconds per attempt
    retries: int = 2                    # extra attempts after the first; backoff 1 s, 2 s, 4 s ...

    def channels(self) -> int:
        return len(self.webhook) + (self.email is not None) + (self.syslog is not None)


@dataclass
class ReportConfig:
    formats: list[str] = field(default_factory=lambda: ["html", "json"])
    langs: list[str] = field(default_factory=lambda: ["zh"])
    out_dir: str | None = None          # default <data_dir>/reports/<job>
    sign_key: str | None = None
    sign_sm2_key: str | None = None
    passphrase_file: str | None = None


@dataclass
class Retention:
    keep_scans: int | None = DEFAULT_KEEP_SCANS
    days: int | None = None


@dataclass
class Job:
    """A [[job]] table. Its scan keys are the `tcmscan scan` settings (scanner/engine/settings.py SETTINGS), read
    into `scan`; `job.<key>` reads and sets them by their job-file key (`job.ports` is `job.scan.extra_ports`)."""

    name: str
    scan: ScanSettings
    db: str | None = None
    report: ReportConfig = field(default_factory=ReportConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    retention: Retention = field(default_factory=Retention)


def _scan_key(s: Setting) -> property:
    def get(job: Job) -> Any:
        return getattr(job.scan, s.name)

    def put(job: Job, value: Any) -> None:
        setattr(job.scan, s.name, value)

    return property(get, put, doc=s.help)


for _s in SETTINGS:
    setattr(Job, _s.key, _scan_key(_s))


@dataclass
class JobsConfig:
    path: Path
    jobs: dict[str, Job]
    data_dir: str | None = None

    def job(self, name: str) -> Job:
        if name not in self.jobs:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise UsageError(f"no job {name!r} in {self.path} (jobs: {known})")
        return self.jobs[name]


# -- loading ------------------------------------------------------------------------------------------------
class _Fields:
    """Typed reads from one TOML table; each error names file, job and dotted field."""

    def __init__(self, where: str, table: dict[str, Any], prefix: str, base: Path) -> None:
        self.where, self.t, self.prefix, self.base = where, table, prefix, base
        self.used: set[str] = set()

    def fail(self, key: str, why: str) -> UsageError:
        return UsageError(f"{self.where}: field '{self.prefix}{key}': {why}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False,
            secret: bool = False) -> Any:
        """`secret`: the value may hold a token (a webhook URL or header): an error names its type only."""
        self.used.add(key)
        if key not in self.t:
            if required:
                raise self.fail(key, "is required")
            return default
        v = self.t[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds):   # TOML true is not 1
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            shown = "" if secret else f" {str(v)[:40]!r}"
            raise self.fail(key, f"must be {_article(names)}, not {type(v).__name__}{shown}")
        return v

    def strings(self, key: str, *, required: bool = False, default: list[str] | None = None) -> list[str]:
        v = self.get(key, (list, str), None, required=required)
        if v is None:
            return list(default or [])
        v = [v] if isinstance(v, str) else v
        if not all(isinstance(x, str) and x.strip() for x in v):
            raise self.fail(key, "must be a list of non-empty strings")
        if required and not v:
            raise self.fail(key, "must not be empty")
        return [x.strip() for x in v]

    def path(self, key: str, *, must_exist: bool = True) -> str | None:
        v = self.get(key, str)
        if v is None:
            return None
        p = Path(os.path.expanduser(v))
        p = p if p.is_absolute() else self.base / p       # relative to the config file, not the cwd of cron
        if must_exist and not p.exists():
            raise self.fail(key, f"{p} does not exist")
        return str(p)

    def table(self, key: str) -> dict[str, Any] | None:
        return self.get(key, dict)

    def unknown(self) -> None:
        extra = sorted(set(self.t) - self.used)
        if extra:
            hint = ""
            if extra[0] in ("password", "passphrase", "secret", "token"):
                hint = " (secrets go in a file: use password_file / passphrase_file)"
            raise self.fail(extra[0], f"unknown field{hint}")


def _article(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def load_config(path: str | Path | None = None) -> JobsConfig:
    p = Path(path) if path else default_config_path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"job config {p} does not exist (see docs/jobs.example.toml; --config FILE)") from None
    except IsADirectoryError:
        raise UsageError(f"job config {p} is a directory") from None
    except OSError as e:
        raise UsageError(f"cannot read job config {p}: {e.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"job config {p} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"job config {p} is not valid TOML: {e}") from None
    except RecursionError:      # tomllib recurses per nesting level: a hostile file is one line, not a traceback
        raise UsageError(f"job config {p} nests too deep") from None
    base = p.resolve().parent
    top = _Fields(str(p), doc, "", base)
    data_dir = top.path("data_dir", must_exist=False)
    tables = top.get("job", list, [])
    top.unknown()
    jobs: dict[str, Job] = {}
    for i, t in enumerate(tables):
        if not isinstance(t, dict):
            raise UsageError(f"{p}: [[job]] number {i + 1} is not a table")
        name = t.get("name")
        if not isinstance(name, str) or not JOB_NAME.match(name):
            raise UsageError(f"{p}: [[job]] number {i + 1}: field 'name' must be 1-64 letters, digits, '-' or '_'"
                             f" starting with a letter or digit (got {name!r})")
        if name in jobs:
            raise UsageError(f"{p}: job {name!r} is defined twice")
        jobs[name] = _job(f"{p}: job {name!r}", t, base)
    return JobsConfig(path=p.resolve(), jobs=jobs, data_dir=data_dir)


def _job(where: str, t: dict[str, Any], base: Path) -> Job:
    f = _Fields(where, t, "", base)
    f.get("name", str)
    job = Job(name=t["name"], scan=ScanSettings(**{s.name: _setting(f, s) for s in SETTINGS}),
              db=f.path("db", must_exist=False))
    if (r := f.table("report")) is not None:
        job.report = _report(_Fields(where, r, "report.", base))
    if (n := f.table("notify")) is not None:
        job.notify = _notify(_Fields(where, n, "notify.", base))
    if (k := f.table("retention")) is not None:
        job.retention = _retention(_Fields(where, k, "retention.", base))
    f.unknown()
    return job


def _setting(f: _Fields, s: Setting) -> Any:
    """One scan setting from its key, typed and validated as SETTINGS declares it."""
    if s.type in ("strs", "networks"):
        v: Any = f.strings(s.key, required=s.required)
        if not v and s.default is None:
            v = None                       # e.g. checks: none listed = all installed
    elif s.type == "ports":
        v = f.get(s.key, list, [])
    elif s.type == "path":
        v = f.path(s.key, must_exist=s.must_exist)
    else:
        v = f.get(s.key, {"str": str, "int": int, "bool": bool}[s.type], s.default)
    if v is not None and (why := problem(s, v)):
        raise f.fail(s.key, why)
    return v


def _report(f: _Fields) -> ReportConfig:
    formats = f.strings("formats", default=["html", "json"])
    bad = [x for x in formats if x not in REPORT_FORMATS]
    if bad or not formats:
        raise f.fail("formats", f"unknown format {bad[0] if bad else '(none)'!r} (choose from {', '.join(REPORT_FORMATS)})")
    langs = f.strings("langs", default=["zh"])
    if not langs or any(x not in LANGS for x in langs):
        raise f.fail("langs", "must list zh and/or en")
    rc = ReportConfig(formats=list(dict.fromkeys(formats)), langs=list(dict.fromkeys(langs)),
                      out_dir=f.path("out_dir", must_exist=False), sign_key=f.path("sign_key"),
                      sign_sm2_key=f.path("sign_sm2_key"), passphrase_file=f.path("passphrase_file"))
    if (rc.sign_key or rc.sign_sm2_key) and not rc.passphrase_file and not os.environ.get("TCMSCAN_KEY_PASSPHRASE"):
        raise f.fail("passphrase_file", "is required with sign_key (a scheduled run has no terminal to ask)")
    f.unknown()
    return rc


def _notify(f: _Fields) -> NotifyConfig:
    n = NotifyConfig(min_severity=f.get("min_severity", str, "high"), on_fixed=f.get("on_fixed", bool, True),
                     timeout=float(f.get("timeout", (int, float), 10.0)), retries=f.get("retries", int, 2))
    if n.min_severity not in SEVERITIES:
        raise f.fail("min_severity", f"must be one of {', '.join(SEVERITIES)}")
    if not 0.1 <= n.timeout <= 120:
        raise f.fail("timeout", "must be 0.1-120 seconds")
    if not 0 <= n.retries <= 10:
        raise f.fail("retries", "must be 0-10")
    hooks = f.get("webhook", list, [])
    for i, h in enumerate(hooks):
        hf = _Fields(f.where, h if isinstance(h, dict) else {}, f"notify.webhook[{i}].", f.base)
        if not isinstance(h, dict):
            raise hf.fail("", "must be a table {url = ..., headers = {...}}")
        url = hf.get("url", str, required=True, secret=True)
        if not re.match(r"^https?://[^/\s]+", url):
            raise hf.fail("url", "must be an http:// or https:// URL")
        headers = hf.get("headers", dict, {}, secret=True)
        if not all(isinstance(k, str) and isinstance(v, str) and "\n" not in k + v for k, v in headers.items()):
            raise hf.fail("headers", "must map header names to one-line strings")
        hf.unknown()
        n.webhook.append(Webhook(url=url, headers=headers))
    if (e := f.table("email")) is not None:
        ef = _Fields(f.where, e, "notify.email.", f.base)
        port = ef.get("port", int, 587)
        if not 1 <= port <= 65535:
            raise ef.fail("port", "must be 1-65535")
        to = ef.strings("to", required=True)
        frm = ef.get("from", str, required=True)
        for a in [frm, *to]:
            if "@" not in a or "\n" in a:
                raise ef.fail("to" if a in to else "from", f"{a!r} is not an e-mail address")
        n.email = Email(host=ef.get("host", str, required=True), port=port, from_addr=frm, to=to,
                        starttls=ef.get("starttls", bool, True), user=ef.get("user", str),
                        password_file=ef.path("password_file"), ca_file=ef.path("ca_file"))
        if n.email.password_file and not n.email.user:
            raise ef.fail("user", "is required with password_file")
        if n.email.password_file and not n.email.starttls:
            raise ef.fail("starttls", "must be true when a password is used (it would cross the network in clear)")
        ef.unknown()
    if (s := f.table("syslog")) is not None:
        sf = _Fields(f.where, s, "notify.syslog.", f.base)
        n.syslog = Syslog(address=sf.get("address", str, "/dev/log"), facility=sf.get("facility", str, "user"))
        if n.syslog.facility not in SYSLOG_FACILITIES:
            raise sf.fail("facility", f"must be one of {', '.join(SYSLOG_FACILITIES)}")
        try:
            syslog_address(n.syslog.address)
        except ValueError as err:
            raise sf.fail("address", str(err)) from None
        sf.unknown()
    f.unknown()
    return n


def syslog_address(text: str) -> tuple[str, tuple[str, int] | str]:
    """('unix', path) | ('udp'|'tcp', (host, port))."""
    m = re.match(r"^(udp|tcp)://(\[[^\]]+\]|[^:/]+):(\d{1,5})$", text)
    if m:
        port = int(m.group(3))
        if not 1 <= port <= 65535:
            raise ValueError(f"port out of range in {text!r}")
        return m.group(1), (m.group(2).strip("[]"), port)
    if text.startswith("/"):
        return "unix", text
    raise ValueError(f"{text!r} is neither a socket path nor udp://HOST:PORT or tcp://HOST:PORT")


def _retention(f: _Fields) -> Retention:
    keep = f.get("keep_scans", int)
    days = f.get("days", int)
    if keep is not None and keep < 1:
        raise f.fail("keep_scans", "must be at least 1 (the latest complete scan is always kept)")
    if days is not None and days < 1:
        raise f.fail("days", "must be at least 1")
    f.unknown()
    return Retention(keep_scans=keep if keep is not None or days is not None else DEFAULT_KEEP_SCANS, days=days)


def data_dir_for(config: JobsConfig) -> Path:
    from scanner.engine.scan import default_data_dir

    return Path(config.data_dir) if config.data_dir else default_data_dir()
