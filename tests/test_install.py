"""scripts/install.sh: tcmscan goes into a virtual environment of its own with `tcmscan` linked onto PATH, pip
never runs outside a virtual environment (a stock Debian 12's python3 is externally managed, PEP 668), a second
run installs nothing, and the Debian packages are split into runtime / lab / test lists that do not overlap.

The installs here use --no-apt and a venv and link directory under tmp_path (TCMSCAN_VENV, TCMSCAN_BIN): they
never touch the machine's own venv or /usr/local/bin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "scripts" / "install.sh"
LISTS = {name: REPO / "scripts" / f"apt-{name}.txt" for name in ("runtime", "lab", "test")}
# Only Debian's own interpreter on PATH, as on a stock Debian 12 (no pyenv, no /usr/local).
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Daemons and peers only the tests (or bench/) use: never in what `bash scripts/run.sh` installs.
TEST_ONLY = {"openssh-server", "redis-server", "memcached", "snmpd", "postgresql", "vsftpd", "dovecot-imapd",
             "dovecot-pop3d", "nginx-light", "chromium", "poppler-utils", "testssl.sh", "tcpdump", "restic",
             "borgbackup", "rsync", "mariadb-client", "snmp"}
# Programs run by code that finds them itself, not through a literal subprocess/which call.
LAB_PROGRAMS = ("debootstrap", "ip", "nsenter", "unshare")   # lab/rootfs.sh, lab/netns.py
# Optional: scheduling uses systemd timers, or cron when the machine has it; neither list installs cron.
OPTIONAL_PROGRAMS = {"cron", "crond", "crontab"}
# Programs the tests run that no Debian package provides: the interpreter running them, and ssh-audit (PyPI,
# the [test] extra, run from the test venv by tests/checks/test_ssh_peer.py).
NOT_DEBIAN = {"python3": None, "ssh-audit": "ssh-audit"}

pytestmark = pytest.mark.skipif(not Path("/usr/bin/dpkg-query").exists(), reason="Debian only")


def install(venv: Path, bindir: Path, *args: str, path: str | None = None, **env: str):
    # PIP_REQUIRE_VIRTUALENV: should install.sh ever run pip outside a venv, it fails here instead of
    # installing into the Python that runs the tests.
    e = {**os.environ, "TCMSCAN_VENV": str(venv), "TCMSCAN_BIN": str(bindir), "PIP_REQUIRE_VIRTUALENV": "1", **env}
    if path is not None:
        e["PATH"] = path
    return subprocess.run(["bash", str(INSTALL), "--no-apt", *args], env=e, capture_output=True, text=True,
                          timeout=900)


def venv_python(venv: Path, code: str, **env: str) -> str:
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                       cwd="/", env=dict(os.environ, **env))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh install with the PATH the suite runs with (here: a pyenv or the venv of scripts/test.sh)."""
    root = tmp_path_factory.mktemp("install")
    venv, bindir = root / "venv", root / "bin"
    p = install(venv, bindir)
    assert p.returncode == 0, p.stdout + p.stderr
    return venv, bindir, root


@pytest.fixture
def pip_spy(tmp_path):
    """A `pip` that shadows the venv's (PYTHONPATH comes first on sys.path): `python -m pip` records its
    arguments and fails. Importing pip still works."""
    shadow, log = tmp_path / "shadow", tmp_path / "pip-calls"
    (shadow / "pip").mkdir(parents=True)
    (shadow / "pip" / "__init__.py").write_text("")
    (shadow / "pip" / "__main__.py").write_text(
        "import sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "sys.exit(3)\n")
    return {"PYTHONPATH": str(shadow)}, log


@pytest.mark.slow
def test_fresh_install_is_a_venv_of_its_own_with_tcmscan_linked(fresh):
    venv, bindir, _ = fresh
    assert (venv / "pyvenv.cfg").is_file()
    out = subprocess.run([str(venv / "bin" / "tcmscan"), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("tcmscan "), out.stdout + out.stderr
    link = bindir / "tcmscan"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin" / "tcmscan"
    assert subprocess.run([str(link), "--version"], capture_output=True, text=True,
                          timeout=60).stdout == out.stdout
    # The venv's interpreter, not the one it was made from: the system's or pyenv's site-packages stay untouched.
    prefix, base = venv_python(venv, "import sys; print(sys.prefix); print(sys.base_prefix)").splitlines()
    assert Path(prefix).resolve() == venv.resolve() and Path(base).resolve() != venv.resolve()
    # Editable: the checkout is what runs.
    where = venv_python(venv, "import scanner; print(scanner.__file__)")
    assert Path(where).resolve().is_relative_to(REPO)
    # WeasyPrint finds the libraries of apt-runtime.txt (a missing optional one is only a warning).
    venv_python(venv, "import warnings; warnings.simplefilter('error', UserWarning); import weasyprint")


@pytest.mark.slow
def test_second_run_installs_nothing_unless_the_stamp_says_so(fresh, pip_spy):
    venv, bindir, _ = fresh
    env, calls = pip_spy
    stamp = venv / ".tcmscan-stamp"
    saved = stamp.read_text()
    try:
        p = install(venv, bindir, **env)
        assert p.returncode == 0, p.stderr
        assert not calls.exists(), f"pip ran on an up-to-date venv: {calls.read_text()}"

        # A stamp that does not match pyproject.toml + this checkout means: install again (the spy fails it).
        stamp.write_text("0" * 64 + f" {REPO}\nruntime\n")
        p = install(venv, bindir, **env)
        assert p.returncode != 0 and "-e ." in calls.read_text()
        calls.unlink()

        # The [test] extra is not there yet: --test must run pip.
        stamp.write_text(saved)
        p = install(venv, bindir, "--test", **env)
        assert p.returncode != 0 and "-e .[test]" in calls.read_text()
    finally:
        stamp.write_text(saved)


@pytest.mark.slow
def test_pip_never_runs_outside_a_venv_on_a_stock_debian(tmp_path):
    """Debian's python3 only, and PIP_REQUIRE_VIRTUALENV=1: any pip outside a virtual environment fails, as
    `pip install` into Debian 12's externally managed python3 does."""
    env = {"PIP_REQUIRE_VIRTUALENV": "1"}   # install() sets it too
    if not Path("/usr/bin/python3").exists():
        pytest.fail("no /usr/bin/python3")
    # The harness catches what the old install.sh did: `python3 -m pip install -e .` with the python3 on PATH.
    old = subprocess.run(["python3", "-m", "pip", "install", "--dry-run", "-e", str(REPO)], cwd=tmp_path,
                         env=dict(os.environ, PATH=DEBIAN_PATH, **env), capture_output=True, text=True, timeout=120)
    assert old.returncode != 0, old.stdout

    venv, bindir = tmp_path / "venv", tmp_path / "bin"
    p = install(venv, bindir, path=DEBIAN_PATH, **env)
    assert p.returncode == 0, p.stdout + p.stderr
    cfg = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line)
    assert cfg["home"] == "/usr/bin", cfg
    assert subprocess.run([str(bindir / "tcmscan"), "--version"], capture_output=True, timeout=60).returncode == 0


def test_refuses_a_venv_path_that_is_not_a_venv(tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "keep").write_text("x")
    p = install(precious, tmp_path / "bin")
    assert p.returncode == 2 and "not a virtual environment" in p.stderr
    assert (precious / "keep").read_text() == "x" and not (tmp_path / "bin").exists()


def test_unknown_option_is_a_usage_error(tmp_path):
    p = install(tmp_path / "venv", tmp_path / "bin", "--lba")
    assert p.returncode == 2 and "usage" in p.stderr and not (tmp_path / "venv").exists()


# --- the Debian package lists -----------------------------------------------------------------------------------

def packages(name: str) -> list[str]:
    """One package a line, "#" starts a comment: parsed as install.sh does."""
    out = []
    for line in LISTS[name].read_text().splitlines():
        pkg = re.sub(r"\s", "", line.split("#", 1)[0])
        if pkg:
            out.append(pkg)
    return out


def test_lists_are_disjoint_and_known_to_apt():
    lists = {name: packages(name) for name in LISTS}
    for name, pkgs in lists.items():
        assert pkgs, f"apt-{name}.txt is empty"
        assert len(pkgs) == len(set(pkgs)), f"apt-{name}.txt names a package twice"
    names = list(lists)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not set(lists[a]) & set(lists[b]), f"apt-{a}.txt and apt-{b}.txt share {set(lists[a]) & set(lists[b])}"
    every = [p for pkgs in lists.values() for p in pkgs]
    out = subprocess.run(["apt-cache", "policy", *every], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, LC_ALL="C")).stdout
    candidate = dict(re.findall(r"^(\S+?)(?::\w+)?:\n(?:  .*\n)*?  Candidate: (\S+)", out, re.M))
    unknown = [p for p in every if candidate.get(p, "(none)") == "(none)"]
    assert not unknown, f"no installation candidate (apt-get update?) for {unknown}"


def test_runtime_installs_none_of_the_test_daemons():
    runtime, test = set(packages("runtime")), set(packages("test"))
    assert not runtime & TEST_ONLY
    assert TEST_ONLY <= test, f"tests need {TEST_ONLY - test}: not in apt-test.txt"


CALL = re.compile(r"""(?:shutil\.which|subprocess\.(?:run|Popen|check_output|check_call|call))\(\s*\[?\s*["']"""
                  r"""([A-Za-z][\w.+-]*)["']""")


def programs(*dirs: str) -> dict[str, str]:
    """Programs the code under dirs runs or looks for on this machine: name -> a file that does."""
    found: dict[str, str] = {}
    for d in dirs:
        for path in sorted((REPO / d).rglob("*.py")):
            for name in CALL.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, str(path.relative_to(REPO)))
    return found


def owner(program: str) -> str:
    exe = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")
    assert exe, f"{program} is not installed"
    paths = {exe, os.path.realpath(exe)}
    paths |= {p.removeprefix("/usr") if p.startswith("/usr/") else "/usr" + p for p in list(paths)}  # merged /usr
    for p in sorted(paths):
        q = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True, timeout=60)
        if q.returncode == 0:
            return q.stdout.splitlines()[0].split(":")[0].split(",")[0].strip()
    raise AssertionError(f"{program} ({exe}) belongs to no Debian package")


def always_there(pkg: str) -> bool:
    """Essential or Priority: required (mount, coreutils, bash): part of every Debian system."""
    fields = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", pkg], capture_output=True,
                            text=True, timeout=60).stdout.split()
    return "yes" in fields or "required" in fields


def depends(pkgs: set[str]) -> set[str]:
    """The packages installed pkgs depend on directly (installing a list installs them too)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}\n", *sorted(pkgs)], capture_output=True,
                         text=True, timeout=60).stdout
    return {alt.split()[0].split(":")[0] for dep in out.replace("\n", ",").split(",") for alt in dep.split("|")
            if alt.strip()}


@pytest.mark.parametrize("dirs,lists,extra", [
    (("scanner", "checks", "reports"), ("runtime",), ()),
    (("lab",), ("runtime", "lab"), LAB_PROGRAMS),
    # Every tool a test runs or looks for (and may skip without, locally) is installed by scripts/test.sh, so
    # no test skips -- which under CI=true fails (tests/conftest.py) -- for want of a tool.
    (("tests",), ("runtime", "lab", "test"), ()),
], ids=["runtime", "lab", "tests"])
def test_programs_the_code_runs_come_from_its_lists(dirs, lists, extra):
    allowed = {p for name in lists for p in packages(name)}
    allowed |= depends(allowed)
    used = {**programs(*dirs), **{p: "(known)" for p in extra}}
    missing = {}
    for program, where in sorted(used.items()):
        if program in OPTIONAL_PROGRAMS or program in NOT_DEBIAN:
            continue
        pkg = owner(program)
        if pkg not in allowed and not always_there(pkg):
            missing[program] = f"{pkg} (used in {where})"
    assert not missing, f"not in apt-{'/'.join(lists)}.txt: {missing}"


def test_python_tools_the_tests_run_come_from_the_test_extra():
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0] for d in extra}
    used = set(programs("tests"))
    assert {dist for prog, dist in NOT_DEBIAN.items() if dist and prog in used} <= names
