"""One authenticated SSH session per host per scan, shared by every check that reads the host
(hardening, accounts, audit, backups): collect once, evaluate many. Host keys are pinned on first use."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError

MAX_OUTPUT = 4 * 1024 * 1024   # bytes read from one command at most
MAX_STDERR = 64 * 1024
# CSI / OSC / two-byte escape sequences: colour codes a login script may print
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


class HostKeyChanged(CheckError):
    """The host presented a key other than the pinned one: authenticated checks on it stop."""

    def __init__(self, name: str, key_type: str, old: str, new: str) -> None:
        super().__init__("host-key-changed", f"{key_type} host key of {name} changed: was {old}, now {new}; "
                                             "authenticated checks stopped")
        self.name, self.key_type, self.old, self.new = name, key_type, old, new

    def again(self) -> HostKeyChanged:
        """A fresh copy to raise in another attempt (an exception object is not shared between threads)."""
        return HostKeyChanged(self.name, self.key_type, self.old, self.new)


@dataclass
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    truncated: bool = False
    clean: bool = True        # False: the shell printed nothing of ours (no start marker): output untrusted


class KnownHosts:
    """Our own pin file (`address keytype base64`), separate from the user's ~/.ssh/known_hosts."""

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self, address: str, port: int, key: paramiko.PKey) -> str:
        """'pinned' (matches), 'new' (recorded now), or raise host-key-changed."""
        name = address if port == 22 else f"[{address}]:{port}"
        with self._lock:
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            for line in lines:
                parts = line.split()
                if len(parts) >= 3 and parts[0] == name and parts[1] == key.get_name():
                    if parts[2] == key.get_base64():
                        return "pinned"
                    raise HostKeyChanged(name, key.get_name(), _fp(parts[2]), _fp(key.get_base64()))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
            return "new"


def _fp(b64: str) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(b64)).digest()).decode().rstrip("=")


@dataclass
class HostSession:
    address: str
    client: paramiko.SSHClient
    user: str
    sudo: bool
    host_key_status: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    broken: str = ""

    def run(self, command: str, timeout: float = 20.0, *, privileged: bool = False,
            limit: int = MAX_OUTPUT) -> CommandResult:
        """Run a read-only command. `privileged` wraps it in non-interactive sudo when the credential says so.

        What login scripts print before our command (banners, motd, colour codes from ~/.bashrc) is cut
        at a random start marker; ANSI escape sequences are removed; stdout is capped at `limit` bytes.
        """
        if self.broken:
            raise CheckError("connectivity", self.broken)
        if privileged and self.sudo and self.user != "root":
            command = "sudo -n -- sh -c " + shell_quote(command)
        mark = f"__tcmscan_{secrets.token_hex(6)}__"
        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("session closed by the host")
            chan = transport.open_session(timeout=timeout)
            chan.settimeout(timeout)
            # LC_ALL=C: parse stable English output; no tty: no colour codes or motd in the output
            chan.exec_command(f"LC_ALL=C; export LC_ALL; echo {mark}; echo {mark} >&2; {command}")
            out, err = _read_all(chan, limit, time.monotonic() + timeout)
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
            chan.close()
            if status == -1:
                # no exit status: the command was killed, or the connection dropped under it
                if transport.is_alive():
                    transport.join(0.3)
                if not transport.is_active():
                    raise paramiko.SSHException("connection closed while a command ran")
        except (TimeoutError, OSError) as e:
            raise CheckError("timeout", f"command did not finish in {timeout:.0f} s: {command[:60]}") from e
        except (paramiko.SSHException, EOFError) as e:
            self.broken = f"SSH session to {self.address} dropped: {e}"
            raise CheckError("connectivity", self.broken) from None
        stdout, found = _after_marker(out[0].decode("utf-8", "replace"), mark)
        stderr, _ = _after_marker(err[0].decode("utf-8", "replace"), mark)
        return CommandResult(command, status, stdout, stderr, truncated=out[1], clean=found)


def _after_marker(text: str, mark: str) -> tuple[str, bool]:
    i = text.find(mark)
    if i < 0:
        return _ANSI.sub("", text), False
    return _ANSI.sub("", text[i + len(mark):].removeprefix("\r").removeprefix("\n")), True


def _read_all(chan: paramiko.Channel, limit: int, deadline: float
              ) -> tuple[tuple[bytes, bool], tuple[bytes, bool]]:
    """Both streams of a channel, bounded in size and in time (TimeoutError past `deadline`)."""
    out, err = bytearray(), bytearray()
    truncated = False
    limit += 256      # room for the start marker and what a login script printed before it
    while True:
        if chan.recv_ready():
            data = chan.recv(65536)
            if len(out) < limit:
                out += data
            else:
                truncated = True
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)[: max(0, MAX_STDERR - len(err))]
        elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        elif chan.closed or chan.eof_received and chan.exit_status_ready():
            break
        else:
            if time.monotonic() > deadline:
                chan.close()
                raise TimeoutError("command timed out")
            chan.status_event.wait(0.05)
            if chan.closed and not chan.recv_ready():
                break
    return (bytes(out[:limit]), truncated or len(out) > limit), (bytes(err), False)


def shell_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


_sessions_lock = threading.Lock()


def host_session(ctx: CheckContext) -> HostSession:
    """The shared session for ctx's host, opened on first use (one login per host per scan)."""
    env: RunEnv = ctx.env
    cache = env.__dict__.setdefault("_ssh_sessions", {})
    locks = env.__dict__.setdefault("_ssh_locks", {})
    with _sessions_lock:
        lock = locks.setdefault(ctx.address, threading.Lock())
    with lock:
        existing = cache.get(ctx.address)
        if isinstance(existing, HostKeyChanged):
            raise existing.again() from None
        if isinstance(existing, CheckError):
            raise CheckError(existing.reason, existing.detail)
        if existing is not None:
            return existing
        try:
            cache[ctx.address] = _open(ctx)
        except CheckError as e:
            cache[ctx.address] = e       # do not retry a failed login from every check
            raise
        return cache[ctx.address]


def host_key_facts(env: RunEnv, address: str) -> dict | None:
    """What the handshake saw of the host key (status pinned/new/changed, type, fingerprints), or None
    when no handshake happened (no route, no SSH). Filled by the first attempt that opened the session."""
    return env.__dict__.get("_ssh_hostkeys", {}).get(address)


def _open(ctx: CheckContext) -> HostSession:
    cred = ctx.credential("ssh")
    if cred is None:
        raise CheckError("no-credentials", "no ssh credentials for this host")
    port = cred.port or 22
    sock = ctx.connect(port, timeout=10, keep=True)   # shared by the host's later attempts
    transport = paramiko.Transport(sock)
    facts = ctx.env.__dict__.setdefault("_ssh_hostkeys", {})
    try:
        transport.start_client(timeout=10)
        key = transport.get_remote_server_key()
        known = KnownHosts(ctx.env.known_hosts or Path.home() / ".local/share/tcmscan/known_hosts")
        try:
            status = known.check(ctx.address, port, key)
        except HostKeyChanged as e:
            facts[ctx.address] = {"status": "changed", "port": port, "type": e.key_type, "fingerprint": e.new,
                               "pinned_fingerprint": e.old}
            raise
        facts[ctx.address] = {"status": status, "port": port, "type": key.get_name(),
                           "fingerprint": _fp(key.get_base64()), "pinned_fingerprint": _fp(key.get_base64())}
        _authenticate(transport, cred)
    except paramiko.AuthenticationException:
        transport.close()
        raise CheckError("auth", f"authentication as {cred.user} refused") from None
    except (paramiko.SSHException, EOFError) as e:
        transport.close()
        raise CheckError("protocol", f"SSH handshake failed: {e}") from None
    except OSError as e:
        transport.close()
        raise CheckError("connectivity", f"SSH connection to {ctx.address}:{port} failed: {e}") from None
    except CheckError:
        transport.close()
        raise
    client = paramiko.SSHClient()
    client._transport = transport  # noqa: SLF001 - paramiko's documented way to wrap an authenticated Transport
    return HostSession(ctx.address, client, cred.user, cred.sudo, status)


def _authenticate(transport: paramiko.Transport, cred) -> None:
    """Key file, else password, else the keys an ssh-agent ($SSH_AUTH_SOCK) holds, tried in turn."""
    if cred.key_file:
        transport.auth_publickey(cred.user, _load_key(cred.key_file))
        return
    if cred.password is not None:
        transport.auth_password(cred.user, cred.password)
        return
    agent = paramiko.Agent()
    try:
        keys = agent.get_keys()
        if not keys:
            raise CheckError("no-credentials", "credential has neither key_file nor password, and no ssh-agent "
                                               "key is available ($SSH_AUTH_SOCK)")
        for k in keys:
            try:
                transport.auth_publickey(cred.user, k)
                return
            except paramiko.AuthenticationException:
                continue
        raise paramiko.AuthenticationException("no ssh-agent key accepted")
    finally:
        agent.close()


def _load_key(path: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(path)
        except paramiko.PasswordRequiredException:
            raise CheckError("auth", f"key file {path} is encrypted; use ssh-agent") from None
        except (paramiko.SSHException, ValueError):
            continue
    raise CheckError("auth", f"cannot read private key {path}")


def close_sessions(env: RunEnv) -> None:
    for s in env.__dict__.get("_ssh_sessions", {}).values():
        if isinstance(s, HostSession):
            s.client.close()
