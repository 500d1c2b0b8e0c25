"""Real Samba smbd (Debian package `samba`) for the smb.* tests: a weak file server and its hardened twin, each on
a loopback address of its own with a temporary smb.conf, started and stopped by the tests (never the system
service). No nmbd, NetBIOS off, no mDNS: nothing leaves loopback.

Samba binds only addresses it finds on an interface; `interfaces = 127.25.0.x/8` matches lo's 127.0.0.1/8 and
makes smbd bind exactly 127.25.0.x (checked below with ss), without adding an address to lo.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback import stop_process, stop_processes_naming, wait_port

SMBD = "/usr/sbin/smbd"
REPORT_FILES = ("his-export-2026-11.csv", "lis-results-2026-11.csv", "pacs-worklist.csv")   # fake exports
REPORT_FOLDERS = ("archive",)

WEAK = """\
  server min protocol = NT1
  server signing = auto
  map to guest = Bad User
  restrict anonymous = 0
[reports]
  path = {share}
  read only = yes
  guest ok = yes
  comment = exported reports
"""
HARDENED = """\
  server min protocol = SMB3
  server signing = mandatory
  map to guest = Never
  restrict anonymous = 2
[reports]
  path = {share}
  read only = yes
  guest ok = no
  comment = exported reports
"""


@dataclass
class Smbd:
    address: str
    port: int
    proc: subprocess.Popen
    share: Path
    conf: Path

    def stop(self) -> None:
        stop_process(self.proc)
        # smbd starts samba-dcerpcd and its rpcd_* workers on demand (srvsvc), each in a session of its own, and
        # they outlive smbd. They are ours by their command line, which names our temporary smb.conf.
        stop_processes_naming(f"--configfile={self.conf}")
        shutil.rmtree(self.share, ignore_errors=True)


def need_samba() -> None:
    if not Path(SMBD).exists():
        pytest.skip("needs smbd (apt-get install samba; scripts/apt-test.txt)")


def start_smbd(tmp: Path, address: str, port: int, *, weak: bool, extra_files: int = 0) -> Smbd:
    """smbd in the foreground with its own directories under `tmp`."""
    for d in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    # The guest account (nobody) must reach the share: pytest's temporary directories are 0700, so the share
    # gets a directory of its own directly under /tmp (removed by stop()).
    share = Path(tempfile.mkdtemp(prefix="tcmscan-smb-share-"))
    for name in REPORT_FILES:
        (share / name).write_text("patient_id,name\nFAKE-0001,TEST PATIENT\n", encoding="utf-8")
    for name in REPORT_FOLDERS:
        (share / name).mkdir(exist_ok=True)
    for i in range(extra_files):          # a big export folder (empty files: only names are counted)
        (share / f"scan-{i:06d}.pdf").touch()
    for p in (share, *share.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)    # the guest account (nobody) must read them
    conf = tmp / "smb.conf"
    conf.write_text(
        "[global]\n"
        "  workgroup = TCMHOSP\n"
        f"  netbios name = {'FILESRV' if weak else 'SECURESRV'}\n"
        "  server string = TCM file server\n"
        "  server role = standalone server\n"
        f"  interfaces = {address}/8\n"
        "  bind interfaces only = yes\n"
        f"  smb ports = {port}\n"
        "  disable netbios = yes\n"
        "  multicast dns register = no\n"
        "  load printers = no\n  printing = bsd\n  printcap name = /dev/null\n  disable spoolss = yes\n"
        "  guest account = nobody\n"
        f"  private dir = {tmp / 'private'}\n  lock directory = {tmp / 'lock'}\n"
        f"  state directory = {tmp / 'state'}\n  cache directory = {tmp / 'cache'}\n"
        f"  pid directory = {tmp / 'pid'}\n  ncalrpc dir = {tmp / 'ncalrpc'}\n"
        f"  passdb backend = tdbsam:{tmp / 'private' / 'passdb.tdb'}\n"
        f"  log file = {tmp / 'log.%m'}\n  max log size = 1000\n"
        + (WEAK if weak else HARDENED).format(share=share), encoding="utf-8")
    # A session of its own: smbd ends its children at shutdown by signalling its whole process group, which
    # would otherwise be pytest's.
    proc = subprocess.Popen([SMBD, "--foreground", "--no-process-group", f"--configfile={conf}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(address, port)
        listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
        ours = [ln.split()[3] for ln in listening.splitlines() if f"pid={proc.pid}," in ln]
        assert ours and all(a == f"{address}:{port}" for a in ours), f"smbd listens on {ours}"
    except BaseException:
        stop_process(proc)
        stop_processes_naming(f"--configfile={conf}")
        shutil.rmtree(share, ignore_errors=True)
        raise
    return Smbd(address, port, proc, share, conf)


def tools() -> dict[str, str | None]:
    return {t: shutil.which(t) for t in ("smbclient", "nmap")}
