"""host.snapshot / host.host-key against a real OpenSSH sshd started here on 127.0.0.7:<free port>.

The sshd runs as root on this machine, so the snapshot reads THIS machine's files: exact values are
asserted only for what the test controls (host key, login, the wrapper's banner, hidden commands,
dropped connections). A ForceCommand wrapper (a real shell script, not a fake) switches behaviour per
test through a mode file: normal, banner+colour codes, drop mid-snapshot, missing commands (a private
mount namespace hides most of /usr/bin and /usr/sbin, like a BusyBox host)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from checks.host import _parse_accounts as pa
from scanner.assess.baseline import DEFAULT_PROFILE, load_profile
from scanner.store import Store
from tests.helpers import observations, scan, tcmscan

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not Path(SSHD).exists() or os.geteuid() != 0, reason="needs root and OpenSSH sshd")

WRAPPER = r"""#!/bin/sh
mode=$(cat "{dir}/mode" 2>/dev/null)
case "$mode" in
  banner)
    printf '\033[1;31m*** Welcome to HIS production ***\033[0m\n\033]0;title\007Authorized use only\n'
    printf '\033[33mwarning banner on stderr\033[0m\n' >&2
    exec sh -c "$SSH_ORIGINAL_COMMAND" ;;
  drop)
    case "$SSH_ORIGINAL_COMMAND" in
      *@@tcmscan-*) sh -c "$SSH_ORIGINAL_COMMAND" >/dev/null 2>&1 & sleep 0.3; kill -9 $PPID; exit 0 ;;
    esac
    exec sh -c "$SSH_ORIGINAL_COMMAND" ;;
  missing)
    # a BusyBox-like host: only a handful of programs; no sshd, ps, lastlog, find, dpkg, apt, nft, iptables
    exec unshare -m sh -c '
      d=$(mktemp -d); mount -t tmpfs tmpfs "$d"
      for p in sh dash cat awk mawk date uname id head ls stat grep mkdir rm; do
        [ -e /usr/bin/$p ] && cp /usr/bin/$p "$d/"; done
      mount -t tmpfs tmpfs /usr/sbin; mount -t tmpfs tmpfs /usr/local/bin; mount --bind "$d" /usr/bin
      exec /usr/bin/sh -c "$SSH_ORIGINAL_COMMAND"' ;;
  *) exec sh -c "$SSH_ORIGINAL_COMMAND" ;;
esac
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.7", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    for name in ("hostkey", "otherkey", "clientkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=30)
    (d / "authorized_keys").write_text((d / "clientkey.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    wrapper = d / "wrapper.sh"
    wrapper.write_text(WRAPPER.replace("{dir}", str(d)))
    wrapper.chmod(0o755)
    (d / "mode").write_text("normal")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.7\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"PermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {d}/sshd.pid\nForceCommand {wrapper}\nUseDNS no\nMaxStartups 50\n")
    Path("/run/sshd").mkdir(exist_ok=True)        # privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.7", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"dir": d, "port": port}
    proc.terminate()
    proc.wait(timeout=10)


def _creds(sshd, tmp_path, **fields) -> str:
    entry = {"match": "127.0.0.7", "type": "ssh", "user": "root", "port": sshd["port"], **fields}
    p = tmp_path / "creds.yaml"
    body = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in entry.items())
    p.write_text("credentials:\n  - {" + body + "}\n")
    p.chmod(0o600)                      # a credentials file others can read is refused
    return str(p)


def _scan(sshd, tmp_path, mode: str, creds: str, known_hosts: Path | None = None, env: dict | None = None):
    (sshd["dir"] / "mode").write_text(mode)
    db = tmp_path / "scan.db"
    args = ["--ports", str(sshd["port"]), "--no-ping"]
    if env:   # the ssh-agent test needs SSH_AUTH_SOCK in the scanner's environment
        p = tcmscan("scan", "127.0.0.7", "--quiet", "--scope", "127.0.0.7/32", "--checks", "host", "--credentials",
                    creds, "--known-hosts", str(known_hosts or tmp_path / "kh"), *args, db=db, check=True, env=env)
        scan_id = p.stdout.strip().splitlines()[-1]
    else:
        scan_id, _ = scan(["127.0.0.7"], scope=["127.0.0.7/32"], db=db, checks=["host"], credentials=creds,
                          known_hosts=known_hosts or tmp_path / "kh", extra=args)
    store = Store(db)
    attempts = {a["check_id"]: a for a in store.attempts(scan_id)}
    verdicts = {r.rule_id: r for r in store.rule_results(scan_id)}
    obs = {(o["check_id"], o["key"]): o["data"] for o in observations(db, scan_id)}
    return attempts, verdicts, obs, db, scan_id


OUR_RULES = ("accounts.empty-password", "accounts.duplicate-uid0", "accounts.md5-password-hash",
             "accounts.password-policy", "accounts.no-lockout", "accounts.idle-timeout",
             "accounts.ssh-root-password-login", "accounts.ssh-password-only", "accounts.stale-account",
             "audit.no-audit-daemon", "audit.no-remote-log", "audit.log-retention", "hardening.ssh-no-source-limit",
             "hardening.pending-security-updates", "hardening.no-firewall", "hardening.shadow-permissions",
             "hardening.world-writable-etc", "hardening.no-time-sync", "hardening.no-antimalware")


def test_snapshot_normal_and_pinning(sshd, tmp_path):
    creds = _creds(sshd, tmp_path, key_file=str(sshd["dir"] / "clientkey"))
    attempts, verdicts, obs, _, _ = _scan(sshd, tmp_path, "normal", creds)
    assert (attempts["host.snapshot"]["status"], attempts["host.host-key"]["status"]) == ("completed", "completed")
    fp = subprocess.run(["ssh-keygen", "-lf", str(sshd["dir"] / "hostkey.pub")], capture_output=True,
                        text=True).stdout.split()[1]
    assert obs[("host.host-key", "host-key")] == {"changed": False, "status": "new", "port": sshd["port"],
                                                  "key_type": "ssh-ed25519", "fingerprint": fp,
                                                  "pinned_key_type": "ssh-ed25519", "pinned_fingerprint": fp}
    system = obs[("host.snapshot", "system")]
    assert (system["login_user"], system["uid"], system["hostname"]) == ("root", 0, socket.gethostname())
    assert obs[("host.snapshot", "sshd")]["source"] == "sshd -T"
    assert "root" in obs[("host.snapshot", "accounts")]["uid0"]
    root = next(u for u in obs[("host.snapshot", "shadow")]["users"] if u["user"] == "root")
    assert set(root) == {"user", "uid", "interactive", "algorithm", "locked", "empty", "max_days",
                         "days_since_change", "expired", "hash_in_passwd"}
    # THIS machine's root: what the same awk program, run here without SSH, reads from /etc/shadow
    local = subprocess.run(["sh", "-c", pa.SHADOW_CMD], capture_output=True, text=True, timeout=10, check=True)
    here = next(u for u in pa.parse_shadow_meta(local.stdout) if u["user"] == "root")
    assert (root["algorithm"], root["locked"], root["empty"]) == (here["algorithm"], here["locked"], here["empty"])
    assert verdicts["hardening.host-key-changed"].status == "passed"
    # Every rule of ours is assessed (passed or failed, as this machine is), except exactly those whose snapshot
    # section says it cannot be read here (no nft, no logrotate.conf, ...): not assessed, with that very reason.
    ours = {k: (v.status, v.reason) for k, v in verdicts.items() if k in OUR_RULES}
    assert sorted(ours) == sorted(OUR_RULES)
    key = {r.id: r.key for r in load_profile(DEFAULT_PROFILE).rules if r.id in OUR_RULES}
    missing = {rule: obs[("host.snapshot", key[rule])].get("unavailable") for rule in OUR_RULES}
    assert {k: v for k, v in ours.items() if v[0] not in ("passed", "failed")} == {
        rule: ("not_assessed", f"unavailable: {key[rule]}: {why}") for rule, why in missing.items() if why}
    # a second scan with the same pin file: pinned, no change
    attempts, verdicts, obs, _, _ = _scan(sshd, tmp_path, "normal", creds, known_hosts=tmp_path / "kh")
    assert obs[("host.host-key", "host-key")]["status"] == "pinned"


def test_changed_host_key_is_a_finding_and_stops_the_snapshot(sshd, tmp_path):
    kh = tmp_path / "kh"
    other = (sshd["dir"] / "otherkey.pub").read_text().split()
    kh.write_text(f"[127.0.0.7]:{sshd['port']} {other[0]} {other[1]}\n")
    creds = _creds(sshd, tmp_path, key_file=str(sshd["dir"] / "clientkey"))
    attempts, verdicts, obs, db, scan_id = _scan(sshd, tmp_path, "normal", creds, known_hosts=kh)
    snap = attempts["host.snapshot"]
    assert (snap["status"], snap["reason"]) == ("error", "host-key-changed")
    assert obs[("host.host-key", "host-key")]["changed"] is True
    found = {(f["rule_id"], f["port"]) for f in tcmscan_findings(db, scan_id)}
    assert found == {("hardening.host-key-changed", None)}
    assert {rule: (v.status, v.reason.split(":")[0]) for rule, v in verdicts.items() if rule in OUR_RULES} == \
        {rule: ("not_assessed", "host-key-changed") for rule in OUR_RULES}
    assert kh.read_text().count("\n") == 1          # the old pin is kept: an operator decides


def tcmscan_findings(db, scan_id):
    from tests.helpers import findings
    return findings(db, scan_id)


def test_wrong_password_not_assessed_auth(sshd, tmp_path):
    creds = _creds(sshd, tmp_path, password="not-the-password")
    attempts, verdicts, obs, _, _ = _scan(sshd, tmp_path, "normal", creds)
    assert (attempts["host.snapshot"]["status"], attempts["host.snapshot"]["reason"]) == ("error", "auth")
    assert {v.status for k, v in verdicts.items() if k in OUR_RULES} == {"not_assessed"}
    assert verdicts["accounts.empty-password"].reason.startswith("auth: authentication as root refused")
    # the host key was seen before authentication: still a fact
    assert obs[("host.host-key", "host-key")]["status"] == "new"
    assert "not-the-password" not in Path(tmp_path / "scan.db").read_bytes().decode("latin-1")


def test_banner_and_colour_codes_are_stripped(sshd, tmp_path):
    creds = _creds(sshd, tmp_path, key_file=str(sshd["dir"] / "clientkey"))
    attempts, _, obs, _, _ = _scan(sshd, tmp_path, "banner", creds)
    assert attempts["host.snapshot"]["status"] == "completed"
    system = obs[("host.snapshot", "system")]
    assert (system["hostname"], system["uid"]) == (socket.gethostname(), 0)
    assert obs[("host.snapshot", "accounts")]["users"][0]["user"] == "root"
    blob = repr(obs)
    assert "Welcome" not in blob and "\\x1b" not in blob and "Authorized use" not in blob


def test_drop_mid_snapshot_not_assessed_connectivity(sshd, tmp_path):
    creds = _creds(sshd, tmp_path, key_file=str(sshd["dir"] / "clientkey"))
    attempts, verdicts, _, _, _ = _scan(sshd, tmp_path, "drop", creds)
    snap = attempts["host.snapshot"]
    assert (snap["status"], snap["reason"]) == ("error", "connectivity")
    assert "dropped" in snap["detail"]
    assert verdicts["accounts.password-policy"].status == "not_assessed"
    assert verdicts["accounts.password-policy"].reason.startswith("connectivity")


def test_missing_commands_are_unavailable_not_guessed(sshd, tmp_path):
    if not shutil.which("unshare"):
        pytest.skip("needs unshare")
    creds = _creds(sshd, tmp_path, key_file=str(sshd["dir"] / "clientkey"))
    attempts, verdicts, obs, _, _ = _scan(sshd, tmp_path, "missing", creds)
    assert attempts["host.snapshot"]["status"] == "completed"
    sshd_obs = obs[("host.snapshot", "sshd")]
    assert sshd_obs["source"] == ("/etc/ssh/sshd_config (parsed; sshd -T unavailable: command not found "
                                  "(missing: sshd))")
    assert obs[("host.snapshot", "logins")]["unavailable"] == "lastlog: command not found (missing: lastlog)"
    assert obs[("host.snapshot", "world-writable")]["unavailable"] == "find: command not found (missing: find)"
    assert obs[("host.snapshot", "firewall")]["unavailable"] == ("nft: command not found (missing: nft); "
                                                                "iptables: command not found (missing: iptables)")
    assert obs[("host.snapshot", "updates")]["unavailable"].startswith("apt: command not found (missing: apt-get)")
    # ps is gone: the kernel's process list is used instead
    assert obs[("host.snapshot", "services")]["sources"][0]["ok"] is True
    for rule, key in (("accounts.stale-account", "logins"), ("hardening.world-writable-etc", "world-writable"),
                      ("hardening.no-firewall", "firewall"), ("hardening.pending-security-updates", "updates")):
        v = verdicts[rule]
        assert (v.status, v.reason.split(":")[0:2]) == ("not_assessed", ["unavailable", f" {key}"]), (rule, v)


def test_ssh_agent_keys(sshd, tmp_path):
    if not shutil.which("ssh-agent"):
        pytest.skip("needs ssh-agent")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", str(sshd["dir"] / "clientkey")], env=env, check=True, capture_output=True,
                       timeout=10)
        creds = _creds(sshd, tmp_path)              # no key_file, no password: ssh-agent
        attempts, _, obs, _, _ = _scan(sshd, tmp_path, "normal", creds, env={"SSH_AUTH_SOCK": str(sock)})
        assert attempts["host.snapshot"]["status"] == "completed"
        assert obs[("host.snapshot", "system")]["login_user"] == "root"
        # without an agent: not assessed, no-credentials
        attempts, _, _, _, _ = _scan(sshd, tmp_path, "normal", creds, env={"SSH_AUTH_SOCK": ""})
        assert (attempts["host.snapshot"]["status"], attempts["host.snapshot"]["reason"]) == \
            ("error", "no-credentials")
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def test_output_after_the_exit_status_is_read(sshd, tmp_path):
    """OpenSSH sends a command's exit status as soon as the command exits, and the rest of its output as it
    drains the pipe (session.c: "there could be some more data waiting in the pipe"): under load a fast
    command's whole output can follow its exit status. Made certain here: the shell exits at once, a child
    it leaves behind writes later. Output is read up to the server's EOF, not up to the exit status (the
    backup catalogue once read an empty `find` as "no local repository" this way)."""
    from checks.backup._collect import session_shell
    from scanner.sdk import CheckError, ssh_session
    from scanner.sdk.credentials import Credential, CredentialStore
    from tests.checks.hostile_loopback import context

    (sshd["dir"] / "mode").write_text("normal")
    creds = CredentialStore([Credential(match="127.0.0.7", type="ssh", user="root", port=sshd["port"],
                                        key_file=str(sshd["dir"] / "clientkey"))])
    ctx = context("127.0.0.7", None, "", "host.snapshot", timeout=30, credentials=creds)
    ctx.env.known_hosts = tmp_path / "known_hosts"
    session = ssh_session.host_session(ctx)
    r = session.run("(sleep 0.5; echo late; echo late-err >&2) & echo early; exit 3", timeout=10)
    assert (r.exit_status, r.stdout, r.stderr, r.clean) == (3, "early\nlate\n", "late-err\n", True)
    # a command whose output comes only after its exit status
    r = session.run("(sleep 0.3; date -u +%s; id -u) &", timeout=10)
    assert r.exit_status == 0 and r.stdout.split()[1:] == ["0"] and r.stdout.split()[0].isdigit()
    # a command killed by a signal has no exit status (OpenSSH sends exit-signal): the backup collector does
    # not read its silence as "nothing there"
    assert session.run("kill -9 $$", timeout=10).exit_status == -1
    sh = session_shell(session.run)
    with pytest.raises(CheckError) as e:
        sh("kill -9 $$")
    assert (e.value.reason, e.value.detail) == (
        "protocol", "a command over the SSH session ended without an exit status: backups not read")
    assert sh("echo ok") == (0, "ok\n", False)
    session.client.close()
