"""Cron expressions, their OnCalendar translation (checked against systemd's own calendar engine), the unit
files (`systemd-analyze verify`) and cron lines (parsed back), and the `tcmscan schedule` commands."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.schedule.timers import (
    CronError,
    cron_d_file,
    cron_line,
    on_calendar,
    parse_cron,
    run_command,
    systemd_units,
)
from tests.helpers import tcmscan

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(not ANALYZE, reason="systemd-analyze not installed")
BASE = dt.datetime(2025, 1, 1, 12, 7)


def systemd_next(calendars: list[str], n: int) -> list[dt.datetime]:
    """Next n elapses of the union of OnCalendar values, from systemd's calendar engine (UTC, fixed base)."""
    times: set[dt.datetime] = set()
    for cal in calendars:
        p = subprocess.run([ANALYZE, "calendar", f"--iterations={n}", f"--base-time={BASE:%Y-%m-%d %H:%M:%S} UTC",
                            cal], capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, timeout=20)
        assert p.returncode == 0, (cal, p.stderr)
        for m in re.finditer(r"(?:Next elapse|Iter\. #\d+): \w{3} (\S+ \S+) UTC", p.stdout):
            times.add(dt.datetime.fromisoformat(m.group(1)))
    return sorted(times)[:n]


CASES = {
    "0 2 * * *": ["*-*-* 02:00:00"],
    "*/15 9-17 * * mon-fri": ["Mon,Tue,Wed,Thu,Fri *-*-* 09..17:00,15,30,45:00"],
    "0 0 1,15 * 5": ["*-*-01,15 00:00:00", "Fri *-*-* 00:00:00"],      # cron ORs restricted day fields
    "30 4 */2 jan-mar *": ["*-01..03-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 04:30:00"],
    "@weekly": ["Sun *-*-* 00:00:00"],
    "5/20 * * * 7": ["Sun *-*-* *:05,25,45:00"],
    "0 3 * * 0,6": ["Sat,Sun *-*-* 03:00:00"],
    "59 23 31 12 *": ["*-12-31 23:59:00"],
}


@pytest.mark.parametrize("expr", CASES)
def test_on_calendar_text(expr):
    assert on_calendar(parse_cron(expr)) == CASES[expr]


@needs_analyze
@pytest.mark.parametrize("expr", CASES)
def test_on_calendar_fires_when_cron_would(expr):
    cron = parse_cron(expr)
    assert systemd_next(on_calendar(cron), 12) == cron.next_runs(BASE, 12)


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    n = st.integers(lo, hi)
    item = st.one_of(n.map(str), st.tuples(n, n).map(lambda t: f"{min(t)}-{max(t)}"),
                     st.integers(1, 7).map(lambda s: f"*/{s}"),
                     st.tuples(n, n, st.integers(1, 5)).map(lambda t: f"{min(t[:2])}-{max(t[:2])}/{t[2]}"))
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


CRONS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 7)).map(" ".join)


@needs_analyze
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CRONS)
def test_random_cron_matches_systemd(expr):
    cron = parse_cron(expr)
    assert systemd_next(on_calendar(cron), 6) == cron.next_runs(BASE, 6), (expr, on_calendar(cron))


@settings(max_examples=300, deadline=200)
@given(st.text(max_size=60))
def test_garbage_never_crashes(text):
    try:
        parse_cron(text)
    except CronError as e:
        assert "\n" not in str(e) and str(e).startswith("invalid cron expression")


@pytest.mark.parametrize("expr, message", [
    ("61 2 * * *", "invalid cron expression '61 2 * * *': minute 61 is outside 0-59"),
    ("0 2 * *", "invalid cron expression '0 2 * *': need 5 fields (minute hour day-of-month month day-of-week), "
                "e.g. \"0 2 * * *\""),
    ("0 2 * * funday", "invalid cron expression '0 2 * * funday': day of week 'funday' is not a number or name "
                       "(sun, mon, tue, wed, thu, fri, sat)"),
    ("0 5-1 * * *", "invalid cron expression '0 5-1 * * *': range 5-1 in the hour field runs backwards"),
    ("*/0 * * * *", "invalid cron expression '*/0 * * * *': step '0' in the minute field"),
    ("@reboot", "invalid cron expression '@reboot': a scan job needs a time schedule"),
    ("0 2 * * *; rm -rf /", "invalid cron expression '0 2 * * *; rm -rf /': need 5 fields (minute hour "
                            "day-of-month month day-of-week), e.g. \"0 2 * * *\""),
])
def test_invalid_cron(expr, message):
    with pytest.raises(CronError) as e:
        parse_cron(expr)
    assert str(e.value) == message


# -- unit files and cron lines ----------------------------------------------------------------------------------
def _odd_config(tmp_path: Path) -> Path:
    d = tmp_path / "odd dir $HOME"
    d.mkdir()
    cfg = d / "jobs%1.toml"                  # '%' is a systemd specifier and ends a crontab command
    cfg.write_text('[[job]]\nname = "nightly"\ntargets = ["127.0.0.1"]\nscope = ["127.0.0.1/32"]\n')
    return cfg


def _systemd_argv(line: str) -> list[str]:
    # systemd's ExecStart quoting is shell-like for what we emit (double quotes, backslash, $$, %%)
    return [a.replace("%%", "%").replace("$$", "$") for a in shlex.split(line)]


def test_units_parse_back(tmp_path):
    cfg = _odd_config(tmp_path)
    units = systemd_units("nightly", parse_cron("0 0 1,15 * 5"), cfg)
    svc, tmr = units["tcmscan-nightly.service"], units["tcmscan-nightly.timer"]
    (exec_line,) = re.findall(r"^ExecStart=(.*)$", svc, re.M)
    assert _systemd_argv(exec_line) == run_command("nightly", cfg) == \
        [sys.executable, "-m", "scanner.cli", "run", "nightly", "--config", str(cfg)]
    assert re.findall(r"^OnCalendar=(.*)$", tmr, re.M) == ["*-*-01,15 00:00:00", "Fri *-*-* 00:00:00"]
    assert "Unit=tcmscan-nightly.service\n" in tmr and "WantedBy=timers.target\n" in tmr
    assert "Type=oneshot\n" in svc


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path):
    cfg = _odd_config(tmp_path)
    d = tmp_path / "units"
    d.mkdir()
    for name, text in systemd_units("nightly", parse_cron("*/15 9-17 * * mon-fri"), cfg).items():
        (d / name).write_text(text)
    p = subprocess.run([ANALYZE, "verify", "--man=no", "./tcmscan-nightly.service", "./tcmscan-nightly.timer"],
                       cwd=d, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr.strip()) == (0, "")
    # and the check is real: a bad calendar is caught
    (d / "tcmscan-nightly.timer").write_text((d / "tcmscan-nightly.timer").read_text().replace("09..17", "25"))
    p = subprocess.run([ANALYZE, "verify", "--man=no", "./tcmscan-nightly.timer"], cwd=d, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "Failed to parse calendar specification" in p.stderr


def _cron_argv(command: str) -> list[str]:
    assert re.search(r"(?<!\\)%", command) is None          # an unescaped % would cut the command
    return shlex.split(command.replace("\\%", "%"))


def test_cron_d_file_parses_back(tmp_path, monkeypatch):
    monkeypatch.setenv("TCMSCAN_HOME", "/var/lib/tcm scan")
    monkeypatch.delenv("TCMSCAN_DB", raising=False)
    cfg = _odd_config(tmp_path)
    text = cron_d_file("nightly", parse_cron("30 2 * * 1-5"), cfg)
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert lines[:2] == ["SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    fields = lines[2].split(" ", 6)
    assert fields[:6] == ["30", "2", "*", "*", "1-5", "root"]
    argv = _cron_argv(fields[6])
    assert argv == ["TCMSCAN_HOME=/var/lib/tcm scan", *run_command("nightly", cfg)]
    user_line = cron_line("nightly", parse_cron("@daily"), cfg, user=None)
    assert user_line.startswith("@daily ")
    assert _cron_argv(user_line[len("@daily "):]) == ["TCMSCAN_HOME=/var/lib/tcm scan", *run_command("nightly", cfg)]


# -- the CLI -------------------------------------------------------------------------------------------------------
@pytest.fixture
def config(tmp_path):
    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "nightly"\ntargets = ["127.0.0.1"]\nscope = ["127.0.0.1/32"]\n\n'
                   '[[job]]\nname = "weekly-full"\ntargets = ["127.0.0.2"]\nscope = ["127.0.0.2/32"]\n')
    return cfg


def _one_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_add_print_writes_nothing(config, tmp_path):
    p = tcmscan("schedule", "add", "nightly", "--cron", "0 2 * * *", "--config", str(config), "--print",
                "--root", str(tmp_path / "root"))
    assert p.returncode == 0, p.stderr
    root = tmp_path / "root"
    assert f"# {root}/etc/systemd/system/tcmscan-nightly.service\n" in p.stdout
    assert "OnCalendar=*-*-* 02:00:00\n" in p.stdout
    assert f"--config {config}\n" in p.stdout
    assert not root.exists()


def test_add_list_remove_systemd_tree(config, tmp_path):
    root = tmp_path / "root"
    p = tcmscan("schedule", "add", "nightly", "--cron", "0 2 * * *", "--config", str(config), "--root", str(root))
    assert p.returncode == 0, p.stderr
    unit_dir = root / "etc/systemd/system"
    assert sorted(x.name for x in unit_dir.iterdir()) == ["tcmscan-nightly.service", "tcmscan-nightly.timer"]
    p = tcmscan("schedule", "add", "weekly-full", "--cron", "0 3 * * sun", "--config", str(config), "--root",
                str(root), "--backend", "cron.d")
    assert p.returncode == 0, p.stderr
    cron_file = root / "etc/cron.d/tcmscan-weekly-full"
    assert cron_file.read_text().splitlines()[-1].startswith("0 3 * * sun root ")
    assert stat.S_IMODE(cron_file.stat().st_mode) == 0o644     # cron ignores group/other-writable files
    p = tcmscan("schedule", "list", "--root", str(root))
    rows = [r.split() for r in p.stdout.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("nightly", "systemd"), ("weekly-full", "cron.d")]
    assert "0 2 * * *" in p.stdout and "0 3 * * sun" in p.stdout
    p = tcmscan("schedule", "remove", "nightly", "--root", str(root))
    assert p.returncode == 0, p.stderr
    assert list(unit_dir.iterdir()) == []
    p = tcmscan("schedule", "remove", "nightly", "--root", str(root))
    assert (p.returncode, _one_line(p)) == (2, "tcmscan: job 'nightly' is not scheduled (see 'tcmscan schedule list')")
    assert cron_file.exists()                                   # the other job is untouched


FAKE_CRONTAB = """#!/bin/sh
# FAKE crontab(1) for tests: root's real crontab must not be touched by a test; it keeps the table in a file.
case "$1" in
  -l) [ -f "$FAKE_CRONTAB_FILE" ] || { echo "no crontab for root" >&2; exit 1; }; cat "$FAKE_CRONTAB_FILE";;
  -) cat > "$FAKE_CRONTAB_FILE";;
  *) exit 2;;
esac
"""


def test_crontab_backend_keeps_other_entries(config, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "crontab").write_text(FAKE_CRONTAB)
    (bin_dir / "crontab").chmod(0o755)
    table = tmp_path / "crontab.txt"
    table.write_text("MAILTO=ops@hospital.test\n15 1 * * * /usr/local/bin/backup.sh\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_CRONTAB_FILE": str(table)}
    p = tcmscan("schedule", "add", "nightly", "--cron", "0 2 * * *", "--config", str(config), "--backend", "crontab",
                env=env)
    assert p.returncode == 0, p.stderr
    lines = table.read_text().splitlines()
    assert lines[:3] == ["MAILTO=ops@hospital.test", "15 1 * * * /usr/local/bin/backup.sh", "# tcmscan-job: nightly"]
    assert _cron_argv(lines[3].split(" ", 5)[5]) == run_command("nightly", config.resolve())
    p = tcmscan("schedule", "add", "nightly", "--cron", "30 2 * * *", "--config", str(config), "--backend", "crontab",
                env=env)                                         # replacing, not duplicating
    assert [x for x in table.read_text().splitlines() if "scanner.cli" in x][0].startswith("30 2 * * * ")
    assert len(table.read_text().splitlines()) == 4
    p = tcmscan("schedule", "list", env=env)
    assert "nightly  crontab  30 2 * * *" in p.stdout
    p = tcmscan("schedule", "remove", "nightly", env=env)
    assert p.returncode == 0, p.stderr
    assert table.read_text().splitlines() == ["MAILTO=ops@hospital.test", "15 1 * * * /usr/local/bin/backup.sh"]


@pytest.mark.parametrize("args, code, line", [
    (["--cron", "0 25 * * *"], 2, "tcmscan: invalid cron expression '0 25 * * *': hour 25 is outside 0-23"),
    (["--cron", "0 2 * * *", "--job", "nope"], 2, "tcmscan: no job 'nope' in {cfg} (jobs: nightly, weekly-full)"),
])
def test_add_bad_input(config, tmp_path, args, code, line):
    job = "nightly"
    if "--job" in args:
        job = args[args.index("--job") + 1]
        args = args[:args.index("--job")]
    p = tcmscan("schedule", "add", job, *args, "--config", str(config), "--root", str(tmp_path / "r"))
    assert (p.returncode, _one_line(p)) == (code, line.format(cfg=config.resolve()))
    assert not (tmp_path / "r").exists()


# A machine with neither systemd as PID 1 nor cron, made inside a mount namespace of the test's own (the
# machine running the tests may have both): empty /run/systemd (no /run/systemd/system: systemd is not PID 1),
# empty /usr/sbin (no /usr/sbin/cron) and a PATH with no cron, crond or crontab on it.
NO_SCHEDULER = ("[ ! -d /run/systemd ] || /usr/bin/mount -t tmpfs none /run/systemd; "
                "/usr/bin/mount -t tmpfs none /usr/sbin; "
                'PATH="$EMPTY_PATH" exec "$@"')


def test_add_with_nothing_to_schedule_with_is_one_line(config, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for a mount namespace without systemd and cron")
    (tmp_path / "empty").mkdir()
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", NO_SCHEDULER, "sh",
                        sys.executable, "-m", "scanner.cli", "schedule", "add", "nightly", "--cron", "0 2 * * *",
                        "--config", str(config)], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[2], env={**os.environ, "EMPTY_PATH": str(tmp_path / "empty")})
    assert (p.returncode, _one_line(p)) == (3, "tcmscan: cannot schedule: systemd is not PID 1 and cron is not "
                                               "installed (apt-get install cron), or use --print and install the "
                                               "lines yourself")
