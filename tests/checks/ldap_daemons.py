"""Real OpenLDAP slapd (Debian package `slapd`) for the ldap.* tests: a weak directory and its hardened twin, each on
a loopback address of its own with a temporary slapd.conf and an mdb database loaded with slapadd, started and
stopped by the tests (never the system service).

weak:     anonymous bind allowed, everything readable by anyone, no TLS (so no StartTLS), simple binds in clear.
hardened: anonymous bind refused, entries readable only by authenticated users, TLS 1.2+ configured (StartTLS
          offered), simple binds refused below TLS strength (security simple_bind=128).
Both keep the root DSE readable (as every directory does: clients discover the naming contexts there).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback import stop_process, wait_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=tcm-hospital,dc=test"
USERS = ("zhangsan", "lisi", "wangwu", "his-service", "pacs-admin")      # fake staff and service accounts

SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
WEAK = """\
access to * by * read
"""
HARDENED = """\
disallow bind_anon
security simple_bind=128
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to * by users read by anonymous auth
"""


@dataclass
class Slapd:
    address: str
    port: int
    proc: subprocess.Popen
    cert: Path | None

    def stop(self) -> None:
        stop_process(self.proc)


def need_slapd() -> None:
    if not Path(SLAPD).exists() or not shutil.which("openssl"):
        pytest.skip("needs slapd and openssl (apt-get install slapd ldap-utils; scripts/apt-test.txt)")


def _ldif() -> str:
    out = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: tcm-hospital\no: TCM Hospital\n",
           f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
           f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n"]
    for i, uid in enumerate(USERS):
        out.append(f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
                   f"uid: {uid}\ncn: {uid}\nsn: {uid}\nuidNumber: {2000 + i}\ngidNumber: 2000\n"
                   f"homeDirectory: /home/{uid}\nuserPassword: not-a-real-password-{i}\n")
    return "\n".join(out)


def start_slapd(tmp: Path, address: str, port: int, *, weak: bool) -> Slapd:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "db").mkdir(exist_ok=True)
    cert = key = None
    tls = ""
    if not weak:
        cert, key = tmp / "tls.crt", tmp / "tls.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "365", "-subj", f"/CN={address}"], check=True, capture_output=True)
        tls = f"TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\nTLSCipherSuite NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2\n"  # GnuTLS priority: TLS 1.2+
    conf = tmp / "slapd.conf"
    conf.write_text(
        "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in SCHEMAS)
        + f"modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {tmp / 'slapd.pid'}\n"
        f"argsfile {tmp / 'slapd.args'}\nloglevel 0\n{tls}"
        + (WEAK if weak else HARDENED)
        + f"database mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\nrootdn \"cn=admin,{SUFFIX}\"\n"
        f"rootpw not-a-real-root-password\ndirectory {tmp / 'db'}\n", encoding="utf-8")
    subprocess.run([SLAPADD, "-f", str(conf), "-q"], input=_ldif(), text=True, check=True, capture_output=True)
    # -d 0: stay in the foreground (no fork), so the PID we hold is slapd's; -h: this address alone
    proc = subprocess.Popen([SLAPD, "-d", "0", "-f", str(conf), "-h", f"ldap://{address}:{port}/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(address, port)
    except BaseException:
        stop_process(proc)
        raise
    return Slapd(address, port, proc, cert)
