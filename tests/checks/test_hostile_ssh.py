"""paramiko against the lab's hostile SSH behaviours (the shared host session of scanner.sdk.ssh_session, and
creds.default's SSH login), on loopback: bounded in time and memory, and each failure says why.

paramiko trusts the peer's lengths and loops on socket timeouts: against a KEXINIT announcing 4 GiB it read
800 MB in the 10 s of its handshake (the lab's `absurd` host, three paramiko clients: a 1.2 GB scan), and a
handshake that never finished came back as "No existing session" or "connection lost"."""

from __future__ import annotations

import tracemalloc

from checks.creds import _logins as logins
from scanner.sdk import ssh_session
from scanner.sdk.credentials import Credential, CredentialStore
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import Hostile, context, finishes
from tests.helpers import tcmscan

MEMORY_BOUND = 32 * 1024 * 1024     # bytes Python may allocate for one hostile handshake


def _session_ctx(address: str, tmp_path, timeout: float = 30.0):
    creds = CredentialStore([Credential(match=address, type="ssh", user="root", password="not-used", port=22)])
    ctx = context(address, None, "", "host.snapshot", timeout=timeout, credentials=creds)
    ctx.env.known_hosts = tmp_path / "known_hosts"
    return ctx


def test_endless_kexinit_is_cut_at_the_handshake_budget(tmp_path):
    with Hostile("ssh-endless-kexinit", 22) as h:
        tracemalloc.start()
        try:
            _, error, seconds = finishes(lambda: ssh_session.host_session(_session_ctx(h.address, tmp_path)), 15)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", "SSH handshake: the peer sent more than 262144 bytes")
    assert seconds < 3
    assert peak < MEMORY_BOUND


def test_silent_server_is_a_handshake_timeout(tmp_path):
    with Hostile("silent", 22) as h:
        _, error, seconds = finishes(lambda: ssh_session.host_session(_session_ctx(h.address, tmp_path)), 20)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "SSH handshake not complete within 10 s")
    assert 9.5 < seconds < 12


def test_flood_banner_is_cut_at_the_handshake_budget(tmp_path):
    with Hostile("flood", 22) as h:
        _, error, seconds = finishes(lambda: ssh_session.host_session(_session_ctx(h.address, tmp_path)), 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", "SSH handshake: the peer sent more than 262144 bytes")
    assert seconds < 5


def test_login_to_a_dripping_server_is_a_timeout():
    with Hostile("drip", 22) as h:
        ctx = context(h.address, 22, "ssh", "creds.default", timeout=4.4)   # "4 s" even on a slow machine
        _, error, seconds = finishes(lambda: logins.ssh_login(ctx, "root", "root"), 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "SSH handshake not complete within 4 s")
    assert seconds < 6


def test_login_to_an_endless_kexinit_is_a_protocol_error():
    with Hostile("ssh-endless-kexinit", 22) as h:
        ctx = context(h.address, 22, "ssh", "creds.default", timeout=30)
        _, error, seconds = finishes(lambda: logins.ssh_login(ctx, "root", "root"), 15)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", "SSH handshake: the peer sent more than 262144 bytes")
    assert seconds < 3


def test_keys_pin_against_an_endless_kexinit_is_one_line(tmp_path):
    """`tcmscan keys pin` uses the scan's bounded handshake: a hostile host cannot fill its memory or hang it."""
    with Hostile("ssh-endless-kexinit", 22) as h:
        p = tcmscan("keys", "pin", h.address, "--known-hosts", str(tmp_path / "kh"), timeout=30)
    assert (p.returncode, p.stdout) == (3, "")
    assert p.stderr == (f"tcmscan: keys pin: SSH handshake with {h.address} failed (ssh-ed25519): SSH handshake: "
                        "the peer sent more than 262144 bytes\n")
    assert not (tmp_path / "kh").exists()
