"""Cron expressions, their systemd OnCalendar equivalent, and the files that schedule `tcmscan run JOB`:
a systemd service + timer where systemd is PID 1, else a cron entry (/etc/cron.d for root, else crontab).

Cron semantics kept exactly: fields are minute hour day-of-month month day-of-week; when both day fields are
restricted a day matches if EITHER matches (cron's rule), which OnCalendar cannot say in one line, so that case
becomes two OnCalendar= lines (systemd ORs them)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scanner.core.errors import ScanFailed, UsageError

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
UNIT_PREFIX = "tcmscan-"
CRON_MARK = "# tcmscan-job:"


class CronError(UsageError):
    pass


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]          # 0 = Sunday (7 folded into 0)
    dom_star: bool                    # the day-of-month field was "*" (cron's OR rule depends on it)
    dow_star: bool

    def matches(self, t: dt.datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom, dow = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_runs(self, after: dt.datetime, n: int) -> list[dt.datetime]:
        """The next n firing times strictly after `after` (naive local time, minute resolution)."""
        out: list[dt.datetime] = []
        day = after.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(366 * 28):                # the calendar repeats every 28 years; Feb 30 never comes
            if day.month in self.months and self._day_ok(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        t = day.replace(hour=h, minute=m)
                        if t > after:
                            out.append(t)
                            if len(out) == n:
                                return out
            day += dt.timedelta(days=1)
        return out

    def _day_ok(self, t: dt.datetime) -> bool:
        dom, dow = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        return dom and dow if (self.dom_star or self.dow_star) else dom or dow


def _value(token: str, lo: int, hi: int, names: tuple[str, ...] | None, base: int, what: str, expr: str) -> int:
    t = token.lower()
    if names and t in names:
        return names.index(t) + base
    if not t.isdigit():
        raise CronError(f"invalid cron expression {expr!r}: {what} {token!r} is not a number"
                        + (f" or name ({', '.join(names)})" if names else ""))
    v = int(t)
    if not lo <= v <= hi:
        raise CronError(f"invalid cron expression {expr!r}: {what} {v} is outside {lo}-{hi}")
    return v


def _field(text: str, index: int, expr: str) -> set[int]:
    what, lo, hi = FIELDS[index]
    names, base = (MONTHS, 1) if index == 3 else (DAYS, 0) if index == 4 else (None, 0)
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"invalid cron expression {expr!r}: empty item in the {what} field")
        rng, _, step_s = part.partition("/")
        step = 1
        if _:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"invalid cron expression {expr!r}: step {step_s!r} in the {what} field")
            step = int(step_s)
        if rng == "*":
            a, b = lo, hi if index != 4 else 6
        elif "-" in rng:
            a_s, b_s = rng.split("-", 1)
            a, b = (_value(x, lo, hi, names, base, what, expr) for x in (a_s, b_s))
            if a > b:
                raise CronError(f"invalid cron expression {expr!r}: range {rng} in the {what} field runs backwards")
        else:
            a = _value(rng, lo, hi, names, base, what, expr)
            b = hi if _ else a          # "5/10" means 5-max/10, as in Vixie cron
        out.update(range(a, b + 1, step))
    return out


def parse_cron(expr: str) -> Cron:
    text = " ".join(expr.split())
    if text.lower() == "@reboot":
        raise CronError("invalid cron expression '@reboot': a scan job needs a time schedule")
    body = MACROS.get(text.lower(), text)
    parts = body.split(" ")
    if len(parts) != 5 or not text:
        raise CronError(f"invalid cron expression {expr!r}: need 5 fields (minute hour day-of-month month "
                        f"day-of-week), e.g. \"0 2 * * *\"")
    if any(ch not in "0123456789*,-/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" for ch in body.replace(" ", "")):
        raise CronError(f"invalid cron expression {expr!r}: unexpected character")
    sets = [_field(p, i, expr) for i, p in enumerate(parts)]
    weekdays = {d % 7 for d in sets[4]}
    return Cron(text=text, minutes=frozenset(sets[0]), hours=frozenset(sets[1]), days=frozenset(sets[2]),
                months=frozenset(sets[3]), weekdays=frozenset(weekdays),
                dom_star=parts[2].startswith("*"), dow_star=parts[4].startswith("*"))


def _compact(values: frozenset[int], lo: int, hi: int, width: int = 2) -> str:
    """Sorted values as systemd calendar syntax: '*', or runs 'a..b' joined by commas."""
    if set(values) == set(range(lo, hi + 1)):
        return "*"
    vs = sorted(values)
    runs: list[str] = []
    i = 0
    while i < len(vs):
        j = i
        while j + 1 < len(vs) and vs[j + 1] == vs[j] + 1:
            j += 1
        a, b = f"{vs[i]:0{width}d}", f"{vs[j]:0{width}d}"
        runs.append(a if i == j else f"{a}..{b}" if j > i + 1 else f"{a},{b}")
        i = j + 1
    return ",".join(runs)


def _weekdays(values: frozenset[int]) -> str:
    if set(values) == set(range(7)):
        return ""
    return ",".join(SD_DAYS[d] for d in sorted(values, key=lambda d: (d + 6) % 7)) + " "   # Mon first


def on_calendar(cron: Cron) -> list[str]:
    """One or two OnCalendar= values firing exactly when cron would."""
    time = f"{_compact(cron.hours, 0, 23)}:{_compact(cron.minutes, 0, 59)}:00"
    month = _compact(cron.months, 1, 12)
    days = _compact(cron.days, 1, 31)
    if cron.dom_star or cron.dow_star:
        # cron ANDs the day fields when either starts with '*' (even '*/2', which still restricts its field).
        return [f"{_weekdays(cron.weekdays)}*-{month}-{days} {time}"]
    return [f"*-{month}-{days} {time}", f"{_weekdays(cron.weekdays)}*-{month}-* {time}"]


# -- what gets written --------------------------------------------------------------------------------------
def run_command(job: str, config: Path) -> list[str]:
    """The exact command a timer runs: this interpreter, so a virtualenv install keeps working."""
    return [sys.executable, "-m", "scanner.cli", "run", job, "--config", str(config)]


def _env_lines() -> dict[str, str]:
    # Carry the data location the user set when scheduling, so the timer writes where `tcmscan scans` reads.
    return {k: os.environ[k] for k in ("TCMSCAN_HOME", "TCMSCAN_DB") if os.environ.get(k)}


def _sd_quote(arg: str) -> str:
    """systemd ExecStart quoting: '%' is a specifier, whitespace/quotes/backslashes need double quotes."""
    arg = arg.replace("%", "%%")
    if arg and not re.search(r'[\s"\'\\;$]', arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def unit_names(job: str) -> tuple[str, str]:
    return f"{UNIT_PREFIX}{job}.service", f"{UNIT_PREFIX}{job}.timer"


def systemd_units(job: str, cron: Cron, config: Path) -> dict[str, str]:
    service, timer = unit_names(job)
    env = "".join(f"Environment={_sd_quote(f'{k}={v}')}\n" for k, v in _env_lines().items())
    svc = (f"# written by 'tcmscan schedule add {job}'; remove with 'tcmscan schedule remove {job}'\n"
           f"[Unit]\nDescription=tcmscan scheduled scan job {job}\n"
           f"Wants=network-online.target\nAfter=network-online.target\n\n"
           f"[Service]\nType=oneshot\n{env}"
           f"ExecStart={' '.join(_sd_quote(a) for a in run_command(job, config))}\n"
           "# exit 4 = scan done but a report or notification could not be delivered: show it as failed\n"
           "TimeoutStartSec=12h\nNice=10\nNoNewPrivileges=yes\n")
    cal = "".join(f"OnCalendar={c}\n" for c in on_calendar(cron))
    tmr = (f"# written by 'tcmscan schedule add {job}' from cron \"{cron.text}\"\n"
           f"[Unit]\nDescription=tcmscan schedule for job {job} (cron \"{cron.text}\")\n\n"
           f"[Timer]\n{cal}Persistent=true\nUnit={service}\n\n[Install]\nWantedBy=timers.target\n")
    return {service: svc, timer: tmr}


def _cron_quote(arg: str) -> str:
    return shlex.quote(arg).replace("%", "\\%")     # an unescaped % ends a crontab command


def cron_line(job: str, cron: Cron, config: Path, *, user: str | None) -> str:
    """One crontab line; `user` set = /etc/cron.d format (a sixth field)."""
    env = " ".join(f"{k}={_cron_quote(v)}" for k, v in _env_lines().items())
    cmd = " ".join(_cron_quote(a) for a in run_command(job, config))
    return f"{cron.text} {user + ' ' if user else ''}{env + ' ' if env else ''}{cmd}"


def cron_d_file(job: str, cron: Cron, config: Path) -> str:
    return (f"# written by 'tcmscan schedule add {job}'; remove with 'tcmscan schedule remove {job}'\n"
            "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            f"{cron_line(job, cron, config, user='root')}\n")


# -- where it goes --------------------------------------------------------------------------------------------
def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()      # sd_booted(): systemd is PID 1


@dataclass
class Plan:
    backend: str                       # systemd | cron.d | crontab
    files: dict[Path, str]             # path -> content (crontab: the whole new table under a pseudo path)
    commands: list[list[str]]


def choose_backend(requested: str, root: Path) -> str:
    if requested in ("systemd", "cron.d", "crontab"):
        return requested
    if root != Path("/"):
        return "systemd"                  # packaging into a tree: units are the portable thing to ship
    if systemd_running():
        return "systemd"
    cron_daemon = shutil.which("cron") or shutil.which("crond") or Path("/usr/sbin/cron").exists()
    if os.geteuid() == 0 and cron_daemon and (root / "etc/cron.d").is_dir():
        return "cron.d"                   # (e2fsprogs creates /etc/cron.d even where no cron daemon reads it)
    if shutil.which("crontab"):
        return "crontab"
    raise ScanFailed("cannot schedule: systemd is not PID 1 and cron is not installed (apt-get install cron), "
                     "or use --print and install the lines yourself")


def plan_add(job: str, cron: Cron, config: Path, *, backend: str = "auto", root: Path = Path("/")) -> Plan:
    kind = choose_backend(backend, root)
    if kind == "systemd":
        d = root / "etc/systemd/system"
        units = systemd_units(job, cron, config)
        cmds = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", unit_names(job)[1]]] \
            if root == Path("/") and systemd_running() else []
        return Plan(kind, {d / n: t for n, t in units.items()}, cmds)
    if kind == "cron.d":
        return Plan(kind, {root / "etc/cron.d" / f"{UNIT_PREFIX}{job}": cron_d_file(job, cron, config)}, [])
    table = _without_job(read_crontab(), job)
    table += f"{CRON_MARK} {job}\n{cron_line(job, cron, config, user=None)}\n"
    return Plan(kind, {Path("crontab"): table}, [["crontab", "-"]])


def read_crontab() -> str:
    if not shutil.which("crontab"):
        return ""
    p = subprocess.run(["crontab", "-l"], capture_output=True, text=True, timeout=30)
    return p.stdout if p.returncode == 0 else ""        # "no crontab for root" is exit 1: an empty table


def _without_job(table: str, job: str) -> str:
    out, skip = [], False
    for line in table.splitlines():
        if line.strip() == f"{CRON_MARK} {job}":
            skip = True                                   # the marker and the line after it are ours
            continue
        if skip:
            skip = False
            continue
        out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def apply(plan: Plan) -> None:
    if plan.backend == "crontab":
        p = subprocess.run(["crontab", "-"], input=plan.files[Path("crontab")], capture_output=True, text=True,
                           timeout=30)
        if p.returncode:
            raise ScanFailed(f"crontab refused the new table: {p.stderr.strip()[:200]}")
        return
    for path, text in plan.files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o644)
            tmp.replace(path)                  # atomic: a timer never reads half a unit
        except OSError as e:
            raise ScanFailed(f"cannot write {path}: {e.strerror}") from None
    for cmd in plan.commands:
        _systemctl(cmd)


def _systemctl(cmd: list[str]) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ScanFailed(f"{' '.join(cmd)} failed: {e}") from None
    if p.returncode:
        raise ScanFailed(f"{' '.join(cmd)} failed: {(p.stderr or p.stdout).strip()[:200]}")


@dataclass
class Installed:
    job: str
    backend: str
    schedule: str
    where: str


def list_installed(root: Path = Path("/")) -> list[Installed]:
    out: list[Installed] = []
    d = root / "etc/systemd/system"
    for timer in sorted(d.glob(f"{UNIT_PREFIX}*.timer")) if d.is_dir() else []:
        text = timer.read_text(encoding="utf-8", errors="replace")
        m = re.search(r'from cron "([^"]*)"', text)
        cal = "; ".join(re.findall(r"^OnCalendar=(.*)$", text, re.M))
        out.append(Installed(timer.name[len(UNIT_PREFIX):-len(".timer")], "systemd",
                             f"{m.group(1) if m else '?'} (OnCalendar {cal})", str(timer)))
    d = root / "etc/cron.d"
    for f in sorted(d.glob(f"{UNIT_PREFIX}*")) if d.is_dir() else []:
        lines = [x for x in f.read_text(encoding="utf-8", errors="replace").splitlines()
                 if x and not x.startswith("#") and "=" not in x.split(" ")[0]]
        out.append(Installed(f.name[len(UNIT_PREFIX):], "cron.d", " ".join(lines[0].split()[:5]) if lines else "?",
                             str(f)))
    if root == Path("/"):
        lines = read_crontab().splitlines()
        for i, line in enumerate(lines):
            if line.startswith(CRON_MARK) and i + 1 < len(lines):
                out.append(Installed(line[len(CRON_MARK):].strip(), "crontab", " ".join(lines[i + 1].split()[:5]),
                                     "crontab -l"))
    return out


def plan_remove(job: str, root: Path = Path("/")) -> Plan:
    found = [i for i in list_installed(root) if i.job == job]
    if not found:
        raise UsageError(f"job {job!r} is not scheduled (see 'tcmscan schedule list')")
    files: dict[Path, str] = {}
    cmds: list[list[str]] = []
    backend = found[0].backend
    for i in found:
        if i.backend == "systemd":
            service, timer = unit_names(job)
            if root == Path("/") and systemd_running():
                cmds.append(["systemctl", "disable", "--now", timer])
            files[Path(i.where)] = ""
            files[Path(i.where).with_name(service)] = ""
        elif i.backend == "cron.d":
            files[Path(i.where)] = ""
        else:
            files[Path("crontab")] = _without_job(read_crontab(), job)
    if cmds:
        cmds.append(["systemctl", "daemon-reload"])
    return Plan(backend, files, cmds)


def apply_remove(plan: Plan) -> None:
    for cmd in plan.commands[:1]:          # stop the timer before its files go
        _systemctl(cmd)
    for path, text in plan.files.items():
        if path == Path("crontab"):
            p = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, timeout=30)
            if p.returncode:
                raise ScanFailed(f"crontab refused the new table: {p.stderr.strip()[:200]}")
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise ScanFailed(f"cannot remove {path}: {e.strerror}") from None
    for cmd in plan.commands[1:]:
        _systemctl(cmd)
