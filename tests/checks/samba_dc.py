"""A real Samba AD domain controller (Debian packages samba-ad-dc, samba-ad-provision) for the directory tests,
provisioned in a temporary directory on a loopback address of its own and started and stopped by the tests:
`samba-tool domain provision --use-rfc2307 --targetdir=...` with NetBIOS, DNS, NTP signing, KCC and winbind off and
`interfaces = 127.25.0.x/8` + `bind interfaces only` (every service binds that address alone; checked with ss).

weak:     the lab's plants: a weak password policy and no lockout, a stale account (lastLogonTimestamp in 2012), an
          account whose password never expires, one with PASSWD_NOTREQD, a generic shared account, two extra
          domain admins, one of them with a mail address (an admin used as an everyday account); simple binds
          allowed in clear and LDAP signing not required (ldap server require strong auth = no).
hardened: a policy that meets the baseline, lockout after 5 failures for 30 minutes, personal accounts only
          (one with a mail address, in no admin group), one named administrator besides the built-in one, without
          a mailbox and in Protected Users; ldap server require strong auth = yes written out (Samba's default:
          AD's "LDAP server signing requirements = Require signing").
The accounts are planted offline in sam.ldb (samba-tool, and Samba's Python bindings for the attributes samba-tool
cannot set) before the DC starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback import stop_process, stop_processes_naming, wait_port

SAMBA, SAMBA_TOOL = "/usr/sbin/samba", "/usr/bin/samba-tool"
REALM, DOMAIN, BASE = "TCM.TEST", "TCM", "DC=tcm,DC=test"
ADMIN_PASSWORD = "Tcm-Admin-2026!x"                          # test-only, never used outside the temporary DC
AUDIT_USER, AUDIT_PASSWORD = "audit", "Audit-Read-2026!x"     # the read-only directory account of the credentials
PASSWORD = "Staff-Pass-2026!x"

WEAK_POLICY = ["--complexity=off", "--min-pwd-length=6", "--history-length=0", "--max-pwd-age=0",
               "--account-lockout-threshold=0"]
HARD_POLICY = ["--complexity=on", "--min-pwd-length=12", "--history-length=24", "--max-pwd-age=90",
               "--account-lockout-threshold=5", "--account-lockout-duration=30", "--reset-account-lockout-after=30"]
# name -> plants (weak DC)
WEAK_USERS = {"zhangsan": ("stale",), "lisi": ("never-expires",), "guahao": ("no-password-required",),
              "nursestation": (), "pacs-admin": ("domain-admin",), "wangwu": ("domain-admin", "mail")}
HARD_USERS = {"zhang.san": ("mail",), "li.si": (), "admin-wang": ("domain-admin", "protected-users")}
STALE_FILETIME = 130_000_000_000_000_000     # 2012-12-14: long before any evaluation


@dataclass
class SambaDC:
    address: str
    proc: subprocess.Popen
    conf: Path
    ca_file: Path
    users: dict[str, tuple[str, ...]]

    def tool(self, *args: str) -> str:
        return subprocess.run([SAMBA_TOOL, *args, "-s", str(self.conf)], capture_output=True, text=True,
                              check=True, timeout=120).stdout

    def stop(self) -> None:
        stop_process(self.proc)
        stop_processes_naming(str(self.conf))   # smbd, winbindd and samba's rpc helpers


def need_samba_dc() -> None:
    if not (Path(SAMBA).exists() and Path(SAMBA_TOOL).exists() and Path("/usr/bin/python3").exists()):
        pytest.skip("needs samba-ad-dc and samba-ad-provision (scripts/apt-test.txt)")
    if os.geteuid() != 0:
        pytest.skip("a Samba AD DC runs as root")


PLANT = """
import sys, ldb
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
conf, base = sys.argv[1], sys.argv[2]
lp = LoadParm(); lp.load(conf)
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
for line in sys.stdin.read().splitlines():
    user, attr, value = line.split()
    dn = "CN=%s,CN=Users,%s" % (user, base)
    if attr == "userAccountControl":
        old = int(db.search(dn, scope=ldb.SCOPE_BASE, attrs=[attr])[0][attr][0])
        value = str(old | int(value, 0))
    db.modify_ldif("dn: %s\\nchangetype: modify\\nreplace: %s\\n%s: %s\\n" % (dn, attr, attr, value),
                   controls=["relax:0"])
"""


def start_dc(tmp: Path, address: str, *, weak: bool) -> SambaDC:
    tmp.mkdir(parents=True, exist_ok=True)
    for d in ("pid", "ncalrpc", "winbindd"):
        (tmp / d).mkdir(exist_ok=True)
    # every run-time path of its own: two DCs (and the system's samba, if any) must not share a pid file or socket
    paths = [f"pid directory={tmp / 'pid'}", f"ncalrpc dir={tmp / 'ncalrpc'}",
             f"winbindd socket directory={tmp / 'winbindd'}", f"ntp signd socket directory={tmp / 'ntp_signd'}"]
    options = [*paths, f"interfaces={address}/8", "bind interfaces only=yes", "disable netbios=yes", "smb ports=445",
               "server services=-dns -nbt -winbindd -ntp_signd -kcc -dnsupdate", f"log file={tmp / 'log.%m'}",
               "logging=file", "load printers=no", "printcap name=/dev/null"]
    subprocess.run([SAMBA_TOOL, "domain", "provision", f"--targetdir={tmp}", f"--realm={REALM}",
                    f"--domain={DOMAIN}", "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
                    f"--adminpass={ADMIN_PASSWORD}", f"--host-ip={address}", "--host-name=dc1",
                    *[f"--option={o}" for o in options]], check=True, capture_output=True, timeout=300)
    conf = tmp / "etc" / "smb.conf"
    # provision does not write this one. no: simple binds (and unsigned SASL) allowed without TLS; yes (the
    # default, written out on the hardened twin): both refused, AD's LDAPServerIntegrity=2
    strong_auth = "no" if weak else "yes"
    text = conf.read_text(encoding="utf-8")
    conf.write_text(text.replace("[global]\n", f"[global]\n\tldap server require strong auth = {strong_auth}\n", 1),
                    encoding="utf-8")

    def tool(*args: str) -> None:
        subprocess.run([SAMBA_TOOL, *args, "-s", str(conf)], check=True, capture_output=True, timeout=120)

    tool("domain", "passwordsettings", "set", *(WEAK_POLICY if weak else HARD_POLICY))
    users = WEAK_USERS if weak else HARD_USERS
    tool("user", "create", AUDIT_USER, AUDIT_PASSWORD)
    plants: list[str] = []
    for name, marks in users.items():
        tool("user", "create", name, PASSWORD, *([f"--mail-address={name}@tcm.test"] if "mail" in marks else []))
        if "never-expires" in marks:
            tool("user", "setexpiry", name, "--noexpiry")
        if "domain-admin" in marks:
            tool("group", "addmembers", "Domain Admins", name)
        if "protected-users" in marks:
            tool("group", "addmembers", "Protected Users", name)
        if "stale" in marks:
            plants.append(f"{name} lastLogonTimestamp {STALE_FILETIME}")
        if "no-password-required" in marks:
            plants.append(f"{name} userAccountControl 0x20")
    if plants:
        subprocess.run(["/usr/bin/python3", "-c", PLANT, str(conf), BASE], input="\n".join(plants), text=True,
                       check=True, capture_output=True, timeout=120)
    # -M single: one process (plus the smbd it starts); -i: foreground, so the PID we hold is samba's
    proc = subprocess.Popen([SAMBA, "-i", "-M", "single", "-s", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for port in (389, 636, 445):
            wait_port(address, port, timeout=60)
        listening = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True).stdout
        ours = {ln.split()[4] for ln in listening.splitlines() if "samba" in ln or "smbd" in ln}
        prefix = address.rpartition(".")[0] + "."      # the twin DC of the same test may listen on its own address
        foreign = [a for a in ours if a.rpartition(":")[0] not in (address,) and not a.startswith(prefix)]
        assert not foreign, f"samba listens beyond {address}: {foreign}"
    except BaseException:
        stop_process(proc)
        stop_processes_naming(str(conf))
        raise
    return SambaDC(address, proc, conf, tmp / "private" / "tls" / "ca.pem", users)


def remove(dc_dir: Path) -> None:
    shutil.rmtree(dc_dir, ignore_errors=True)
