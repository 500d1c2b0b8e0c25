"""SSH host-key pinning, strict mode, `tcmscan keys pin`, key-before-password order and encrypted client keys,
against real OpenSSH sshd daemons started here on a loopback address of their own.

A man in the middle is simply another sshd on the same address and port presenting a key of another type.
What reached a daemon is read from its own LogLevel DEBUG log: every authentication request is logged there
(`userauth-request for user root service ssh-connection method password`), so "no password was sent" is
counted, not assumed. `keys pin` is compared with OpenSSH's own ssh-keyscan and ssh-keygen -lf."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from scanner.store import Store
from tests.helpers import findings, observations, tcmscan

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not Path(SSHD).exists() or os.geteuid() != 0, reason="needs root and OpenSSH sshd")

ADDRESS = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
PASSPHRASE = "long enough passphrase"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def _keygen(path: Path, kind: str, passphrase: str = "") -> Path:
    extra = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", passphrase, "-C", "", "-f", str(path)],
                   check=True, timeout=60)
    return path


class Sshd:
    """One sshd on ADDRESS:port with the given host keys; its DEBUG log is read to see what clients sent."""

    def __init__(self, d: Path, port: int, host_keys: list[Path], name: str) -> None:
        self.log = d / f"{name}.log"
        conf = d / f"{name}.conf"
        conf.write_text(
            f"Port {port}\nListenAddress {ADDRESS}\n" + "".join(f"HostKey {k}\n" for k in host_keys) +
            f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\nPasswordAuthentication yes\n"
            f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {d}/{name}.pid\n"
            f"UseDNS no\nMaxStartups 50\nLogLevel DEBUG\n")
        Path("/run/sshd").mkdir(exist_ok=True)        # privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stderr=open(self.log, "w"))
        for _ in range(200):
            try:
                socket.create_connection((ADDRESS, port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"sshd did not start: {self.log.read_text()[-2000:]}")

    def auth_requests(self, method: str = "") -> int:
        """Authentication requests the daemon received (of `method`, or any)."""
        return sum(1 for line in self.log.read_text().splitlines()
                   if "userauth-request for user" in line and line.split("method ")[-1].startswith(method))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Host keys of the honest host (ed25519, ecdsa, rsa), the man in the middle's (rsa), client keys."""
    d = tmp_path_factory.mktemp("pinning")
    k = {name: _keygen(d / name, kind) for name, kind in (
        ("host_ed25519", "ed25519"), ("host_ecdsa", "ecdsa"), ("host_rsa", "rsa"), ("mitm_rsa", "rsa"),
        ("client", "ed25519"))}
    k["client_enc"] = _keygen(d / "client_enc", "ed25519", PASSPHRASE)
    k["client_rsa_enc"] = _keygen(d / "client_rsa_enc", "rsa", PASSPHRASE)
    (d / "authorized_keys").write_text("".join((d / f"{n}.pub").read_text()
                                               for n in ("client", "client_enc", "client_rsa_enc")))
    k["dir"] = d
    return k


@pytest.fixture
def port():
    return _free_port()


@pytest.fixture
def daemons(keys, port):
    """Start sshds on ADDRESS:port one after another (`start(names, tag)`); all stopped at the end."""
    started: list[Sshd] = []

    def start(host_keys: list[str], tag: str) -> Sshd:
        for s in started:
            if s.proc.poll() is None:
                s.stop()
        s = Sshd(keys["dir"], port, [keys[n] for n in host_keys], f"{tag}-{port}")
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()


def _private(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _creds(tmp_path: Path, port: int, **fields: object) -> str:
    entry = {"match": ADDRESS, "type": "ssh", "user": "root", "port": port, **fields}
    return _private(tmp_path / "creds.yaml", "credentials:\n  - " + json.dumps(entry) + "\n")


def _scan(tmp_path: Path, port: int, creds: str, kh: Path, *more: str, env: dict | None = None):
    db = tmp_path / "scan.db"
    p = tcmscan("scan", ADDRESS, "--quiet", "--scope", f"{ADDRESS}/32", "--checks", "host", "--credentials", creds,
                "--known-hosts", str(kh), "--ports", str(port), "--no-ping", *more, db=db, check=True,
                env={"SSH_AUTH_SOCK": "", **(env or {})})
    scan_id = p.stdout.strip().splitlines()[-1]
    store = Store(db)
    attempts = {a["check_id"]: a for a in store.attempts(scan_id)}
    verdicts = {r.rule_id: r for r in store.rule_results(scan_id)}
    obs = {(o["check_id"], o["key"]): o["data"] for o in observations(db, scan_id)}
    return attempts, verdicts, obs, db, scan_id


def _pin(port: int, kh: Path, *more: str) -> subprocess.CompletedProcess:
    return tcmscan("keys", "pin", ADDRESS, "--port", str(port), "--known-hosts", str(kh), *more)


def _pinned(out: str) -> dict[str, tuple[str, str]]:
    """`keys pin` output lines `NAME TYPE FINGERPRINT STATE` -> {type: (fingerprint, state)}."""
    rows = [line.split(maxsplit=3) for line in out.splitlines() if not line.startswith("pinned in ")]
    return {t: (fp, state) for _, t, fp, state in rows}


def _keyscan_fingerprints(port: int, tmp_path: Path, types: str = "ed25519,ecdsa,rsa") -> dict[str, str]:
    """{type: SHA256 fingerprint} as ssh-keyscan and ssh-keygen -lf see the host."""
    scanned = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", types, ADDRESS], capture_output=True,
                             text=True, timeout=30).stdout
    f = tmp_path / "keyscan"
    f.write_text(scanned)
    listed = subprocess.run(["ssh-keygen", "-lf", str(f)], capture_output=True, text=True, timeout=30,
                            check=True).stdout
    names = {"(ED25519)": "ssh-ed25519", "(ECDSA)": "ecdsa-sha2-nistp256", "(RSA)": "ssh-rsa"}
    return {names[line.split()[-1]]: line.split()[1] for line in listed.splitlines()}


def _fp(pub: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True,
                          timeout=30).stdout.split()[1]


HOST_RULES = ("accounts.empty-password", "accounts.password-policy", "hardening.no-firewall")


# -- keys pin ------------------------------------------------------------------------------------------------
def test_keys_pin_pins_every_key_type_as_ssh_keyscan_sees_them(keys, daemons, port, tmp_path):
    daemons(["host_ed25519", "host_ecdsa", "host_rsa"], "honest")
    kh = tmp_path / "pins" / "known_hosts"          # a directory that does not exist yet
    p = _pin(port, kh)
    assert p.returncode == 0, p.stderr
    independent = _keyscan_fingerprints(port, tmp_path)
    assert len(independent) == 3
    assert _pinned(p.stdout) == {t: (fp, "new") for t, fp in independent.items()}
    assert p.stdout.splitlines()[-1] == f"pinned in {kh}"
    # the pin file: 0600 in a directory created 0700, one `[address]:port type base64` line per key
    assert (kh.stat().st_mode & 0o777, kh.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    lines = kh.read_text().splitlines()
    assert sorted(line.split()[:2] for line in lines) == sorted([f"[{ADDRESS}]:{port}", t] for t in independent)
    for name in ("host_ed25519", "host_ecdsa", "host_rsa"):
        assert (keys["dir"] / f"{name}.pub").read_text().split()[1] in kh.read_text()
    # pinning again changes nothing
    again = _pin(port, kh)
    assert (again.returncode, _pinned(again.stdout)) == (0, {t: (fp, "pinned already") for t, fp in independent.items()})
    assert kh.read_text().splitlines() == lines


def test_keys_pin_refuses_a_changed_host_until_replace(keys, daemons, port, tmp_path):
    daemons(["host_ed25519"], "honest")
    kh = tmp_path / "known_hosts"
    assert _pin(port, kh).returncode == 0
    before = kh.read_text()
    daemons(["mitm_rsa"], "mitm")               # the same address and port, another key of another type
    p = _pin(port, kh)
    assert p.returncode == 1
    assert _pinned(p.stdout) == {"ssh-rsa": (_fp(keys["mitm_rsa"].with_suffix(".pub")), "new")}
    assert p.stderr == (f"tcmscan: keys pin: [{ADDRESS}]:{port} does not present its pinned key (ssh-ed25519 "
                        f"{_fp(keys['host_ed25519'].with_suffix('.pub'))}); nothing written. Confirm the new key "
                        "with the host's owner, then run again with --replace\n")
    assert kh.read_text() == before
    p = _pin(port, kh, "--replace")
    assert p.returncode == 0, p.stderr
    assert kh.read_text() == f"[{ADDRESS}]:{port} ssh-rsa {(keys['dir'] / 'mitm_rsa.pub').read_text().split()[1]}\n"


def test_keys_pin_from_openssh_known_hosts_plain_hashed_and_revoked(keys, tmp_path):
    ed = (keys["dir"] / "host_ed25519.pub").read_text().split()
    rsa = (keys["dir"] / "host_rsa.pub").read_text().split()
    ecdsa = (keys["dir"] / "host_ecdsa.pub").read_text().split()
    other = (keys["dir"] / "mitm_rsa.pub").read_text().split()
    src = tmp_path / "openssh_known_hosts"
    src.write_text(f"# comment\nhis.example,{ADDRESS} {ed[0]} {ed[1]}\n"
                   f"10.0.0.9 {other[0]} {other[1]}\n"             # another host: not taken
                   f"{ADDRESS} {rsa[0]} {rsa[1]}\n"
                   f"@cert-authority * {other[0]} {other[1]}\n"
                   f"{ADDRESS} {ecdsa[0]} {ecdsa[1]}\n@revoked * {ecdsa[0]} {ecdsa[1]}\n")
    # ssh-keygen -H hashes every host name, as HashKnownHosts does
    subprocess.run(["ssh-keygen", "-H", "-f", str(src)], check=True, capture_output=True, timeout=30)
    assert ADDRESS not in src.read_text() and "|1|" in src.read_text()
    kh = tmp_path / "known_hosts"
    p = tcmscan("keys", "pin", ADDRESS, "--known-hosts", str(kh), "--from-known-hosts", str(src))
    assert p.returncode == 0, p.stderr
    assert _pinned(p.stdout) == {"ssh-ed25519": (_fp(keys["host_ed25519"].with_suffix(".pub")), "new"),
                                 "ssh-rsa": (_fp(keys["host_rsa"].with_suffix(".pub")), "new")}
    assert kh.read_text() == f"{ADDRESS} ssh-ed25519 {ed[1]}\n{ADDRESS} ssh-rsa {rsa[1]}\n"
    # on another port the same lines name another host: nothing to take
    p = tcmscan("keys", "pin", ADDRESS, "--port", "2222", "--known-hosts", str(kh), "--from-known-hosts", str(src))
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == (f"tcmscan: known_hosts file {src} has no usable key for [{ADDRESS}]:2222 (plain or hashed "
                        "host names; types ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, "
                        "ecdsa-sha2-nistp521, ssh-rsa)\n")
    p = tcmscan("keys", "pin", "his.example", "--known-hosts", str(kh), "--from-known-hosts", str(src))
    assert (p.returncode, p.stderr) == (2, "tcmscan: keys pin: HOST must be an IP address (scans pin hosts by "
                                           "address), not 'his.example'\n")


# -- the man in the middle with another key type ----------------------------------------------------------
def test_another_key_type_is_a_changed_key_and_no_password_is_sent(keys, daemons, port, tmp_path):
    daemons(["host_ed25519"], "honest")
    kh = tmp_path / "known_hosts"
    assert _pin(port, kh).returncode == 0
    pins = kh.read_text()
    mitm = daemons(["mitm_rsa"], "mitm")
    creds = _creds(tmp_path, port, password="the-root-password")
    attempts, verdicts, obs, db, scan_id = _scan(tmp_path, port, creds, kh)
    snap = attempts["host.snapshot"]
    ed_fp, mitm_fp = _fp(keys["host_ed25519"].with_suffix(".pub")), _fp(keys["mitm_rsa"].with_suffix(".pub"))
    assert (snap["status"], snap["reason"]) == ("error", "host-key-changed")
    assert snap["detail"] == (f"host key of [{ADDRESS}]:{port} changed: pinned ssh-ed25519 {ed_fp}, presented "
                              f"ssh-rsa {mitm_fp}; authenticated checks stopped")
    assert obs[("host.host-key", "host-key")] == {
        "changed": True, "status": "changed", "port": port, "key_type": "ssh-rsa", "fingerprint": mitm_fp,
        "pinned_key_type": "ssh-ed25519", "pinned_fingerprint": ed_fp}
    found = findings(db, scan_id)
    assert [(f["rule_id"], f["evidence"]) for f in found] == [("hardening.host-key-changed", {
        "key_type": "ssh-rsa", "pinned_key_type": "ssh-ed25519", "pinned": ed_fp, "presented": mitm_fp})]
    for rule in HOST_RULES:
        assert verdicts[rule].status == "not_assessed" and verdicts[rule].reason.startswith("host-key-changed")
    # the man in the middle received no authentication request at all, and the pins are as they were
    assert (mitm.auth_requests(), mitm.auth_requests("password")) == (0, 0)
    assert kh.read_text() == pins


def test_a_host_with_several_keys_presents_its_pinned_type(keys, daemons, port, tmp_path):
    """Pinned rsa only: the host, which also has ed25519 (paramiko's first choice), must be asked for rsa."""
    honest = daemons(["host_ed25519", "host_rsa"], "honest")
    scanned = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "rsa", ADDRESS], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    src = tmp_path / "openssh_known_hosts"
    src.write_text(scanned)
    kh = tmp_path / "known_hosts"
    assert tcmscan("keys", "pin", ADDRESS, "--port", str(port), "--known-hosts", str(kh),
                   "--from-known-hosts", str(src)).returncode == 0
    creds = _creds(tmp_path, port, key_file=str(keys["client"]))
    attempts, _, obs, _, _ = _scan(tmp_path, port, creds, kh, "--host-keys", "strict")
    rsa_fp = _fp(keys["host_rsa"].with_suffix(".pub"))
    assert obs[("host.host-key", "host-key")] == {
        "changed": False, "status": "pinned", "port": port, "key_type": "ssh-rsa", "fingerprint": rsa_fp,
        "pinned_key_type": "ssh-rsa", "pinned_fingerprint": rsa_fp}
    assert attempts["host.snapshot"]["status"] == "completed"
    assert kh.read_text().count("\n") == 1                  # nothing added: the ed25519 key was never seen
    assert honest.auth_requests("publickey") >= 1 and honest.auth_requests("password") == 0


# -- strict mode ----------------------------------------------------------------------------------------------
def test_strict_mode_logs_in_to_no_unpinned_host(keys, daemons, port, tmp_path):
    sshd = daemons(["host_ed25519"], "honest")
    kh = tmp_path / "pins" / "known_hosts"
    creds = _creds(tmp_path, port, password="the-root-password")
    attempts, verdicts, obs, _, _ = _scan(tmp_path, port, creds, kh, "--host-keys", "strict")
    ed_fp = _fp(keys["host_ed25519"].with_suffix(".pub"))
    detail = (f"no pinned host key for [{ADDRESS}]:{port} (it presented ssh-ed25519 {ed_fp}); strict host keys: "
              f"not logged in. Pin it: tcmscan keys pin {ADDRESS} --port {port}")
    for check in ("host.snapshot", "host.host-key"):
        a = attempts[check]
        assert (a["status"], a["reason"], a["detail"]) == ("error", "host-key-unpinned", detail)
    assert ("host.host-key", "host-key") not in obs
    assert verdicts["hardening.host-key-changed"].status == "not_assessed"
    for rule in HOST_RULES:
        assert verdicts[rule].status == "not_assessed" and verdicts[rule].reason.startswith("host-key-unpinned")
    assert sshd.auth_requests() == 0
    assert not kh.exists()                               # nothing pinned behind the operator's back
    # once pinned, the strict scan logs in
    assert _pin(port, kh).returncode == 0
    creds = _creds(tmp_path, port, key_file=str(keys["client"]))
    attempts, verdicts, obs, _, _ = _scan(tmp_path, port, creds, kh, "--host-keys", "strict")
    assert attempts["host.snapshot"]["status"] == "completed"
    assert obs[("host.host-key", "host-key")]["status"] == "pinned"
    assert verdicts["hardening.host-key-changed"].status == "passed"


def test_host_keys_mode_is_a_job_setting_too(tmp_path):
    from scanner.schedule.jobs import load_config
    from scanner.schedule.run import settings_for

    cfg = tmp_path / "jobs.toml"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\nhost_keys = "strict"\n')
    assert settings_for(load_config(cfg).job("n")).host_keys == "strict"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\n')
    assert settings_for(load_config(cfg).job("n")).host_keys == "tofu"
    cfg.write_text('[[job]]\nname = "n"\ntargets = ["10.0.0.1"]\nscope = ["10.0.0.0/24"]\nhost_keys = "trust"\n')
    with pytest.raises(Exception, match="field 'host_keys': must be one of tofu, strict$"):
        load_config(cfg)


# -- trust on first use: keys before the password, the new key in the report -------------------------------
def _agent(tmp_path: Path, *key_files: Path):
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    for k in key_files:
        subprocess.run(["ssh-add", str(k)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                       capture_output=True, timeout=10)
    return agent, {"SSH_AUTH_SOCK": str(sock)}


def test_tofu_tries_agent_keys_before_the_password_and_reports_the_new_key(keys, daemons, port, tmp_path):
    sshd = daemons(["host_ed25519"], "honest")
    agent, env = _agent(tmp_path, keys["client"])
    try:
        creds = _creds(tmp_path, port, password="not-the-password")
        attempts, _, obs, db, scan_id = _scan(tmp_path, port, creds, tmp_path / "known_hosts", env=env)
    finally:
        agent.terminate()
        agent.wait(timeout=5)
    assert attempts["host.snapshot"]["status"] == "completed"
    assert (sshd.auth_requests("publickey") >= 1, sshd.auth_requests("password")) == (True, 0)
    ed_fp = _fp(keys["host_ed25519"].with_suffix(".pub"))
    assert obs[("host.host-key", "host-key")]["status"] == "new"
    out = tmp_path / "report"
    p = tcmscan("report", scan_id, "--out", str(out), "--format", "json,html", "--lang", "en", db=db)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "report.json").read_text())
    assert doc["host_keys_tofu"] == [{"address": ADDRESS, "port": port, "key_type": "ssh-ed25519",
                                      "fingerprint": ed_fp}]
    assert [e["message"] for e in doc["events"] if "first use" in e["message"]] == [
        f"SSH host key trusted on first use: [{ADDRESS}]:{port} ssh-ed25519 {ed_fp}, pinned in "
        f"{tmp_path / 'known_hosts'}"]
    html = (out / "report.html").read_text()
    assert "Host keys trusted on first use" in html and ed_fp in html
    # a second scan finds the key pinned: nothing trusted on first use any more
    _, _, obs, db, scan_id = _scan(tmp_path, port, _creds(tmp_path, port, key_file=str(keys["client"])),
                                   tmp_path / "known_hosts")
    assert obs[("host.host-key", "host-key")]["status"] == "pinned"
    out2 = tmp_path / "report2"
    assert tcmscan("report", scan_id, "--out", str(out2), "--format", "json", db=db).returncode == 0
    assert json.loads((out2 / "report.json").read_text())["host_keys_tofu"] == []


def test_password_only_after_every_key_was_refused(keys, daemons, port, tmp_path):
    sshd = daemons(["host_ed25519"], "honest")
    stranger = _keygen(tmp_path / "stranger", "ed25519")       # not in authorized_keys
    creds = _creds(tmp_path, port, key_file=str(stranger), password="not-the-password")
    attempts, _, _, _, _ = _scan(tmp_path, port, creds, tmp_path / "known_hosts")
    snap = attempts["host.snapshot"]
    assert (snap["status"], snap["reason"], snap["detail"]) == (
        "error", "auth", "authentication as root refused (tried key file, password)")
    log = [line.split("method ")[-1].split()[0] for line in sshd.log.read_text().splitlines()
           if "userauth-request for user root" in line]
    assert log == ["publickey", "password"]          # the key first, the password once it was refused


# -- encrypted client keys ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["client_enc", "client_rsa_enc"])
def test_encrypted_key_with_its_passphrase_file(keys, daemons, port, tmp_path, key):
    daemons(["host_ed25519"], "honest")
    # encrypted indeed: OpenSSH itself cannot read it without the passphrase
    assert subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(keys[key])], capture_output=True,
                          timeout=30).returncode != 0
    pp = _private(tmp_path / "passphrase", PASSPHRASE + "\n")
    creds = _creds(tmp_path, port, key_file=str(keys[key]), key_passphrase_file=pp)
    attempts, _, obs, _, _ = _scan(tmp_path, port, creds, tmp_path / "known_hosts")
    assert attempts["host.snapshot"]["status"] == "completed"
    assert obs[("host.snapshot", "system")]["login_user"] == "root"


def test_wrong_passphrase_is_one_clear_reason(keys, daemons, port, tmp_path):
    sshd = daemons(["host_ed25519"], "honest")
    pp = _private(tmp_path / "passphrase", "not the passphrase\n")
    creds = _creds(tmp_path, port, key_file=str(keys["client_enc"]), key_passphrase_file=pp,
                   password="never-sent")
    attempts, verdicts, _, db, _ = _scan(tmp_path, port, creds, tmp_path / "known_hosts")
    snap = attempts["host.snapshot"]
    assert (snap["status"], snap["reason"], snap["detail"]) == (
        "error", "auth", f"wrong passphrase for key file {keys['client_enc']} (key_passphrase_file)")
    assert attempts["host.host-key"]["status"] == "completed"     # the host key was seen before: still a fact
    assert verdicts["accounts.password-policy"].reason == (
        f"auth: wrong passphrase for key file {keys['client_enc']} (key_passphrase_file)")
    assert sshd.auth_requests() == 0                 # a wrong passphrase sends nothing, the password neither
    blob = Path(db).read_bytes()
    assert b"not the passphrase" not in blob and b"never-sent" not in blob


def test_encrypted_key_without_passphrase_uses_the_agent_or_says_why(keys, daemons, port, tmp_path):
    daemons(["host_ed25519"], "honest")
    creds = _creds(tmp_path, port, key_file=str(keys["client_enc"]))
    attempts, _, _, _, _ = _scan(tmp_path, port, creds, tmp_path / "known_hosts")
    snap = attempts["host.snapshot"]
    assert (snap["status"], snap["reason"], snap["detail"]) == (
        "error", "auth", f"key file {keys['client_enc']} is encrypted: give key_passphrase_file in the credential, "
                         "or add the key to ssh-agent ($SSH_AUTH_SOCK)")
    # the same key, decrypted into the agent (ssh-add would ask for the passphrase; the copy holds the same key)
    plain = tmp_path / "client_plain"
    plain.write_bytes(keys["client_enc"].read_bytes())
    plain.chmod(0o600)
    subprocess.run(["ssh-keygen", "-p", "-q", "-P", PASSPHRASE, "-N", "", "-f", str(plain)], check=True,
                   capture_output=True, timeout=30)
    agent, env = _agent(tmp_path, plain)
    try:
        attempts, _, _, _, _ = _scan(tmp_path, port, creds, tmp_path / "known_hosts", env=env)
    finally:
        agent.terminate()
        agent.wait(timeout=5)
    assert attempts["host.snapshot"]["status"] == "completed"
