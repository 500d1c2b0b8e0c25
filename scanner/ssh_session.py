"""One authenticated SSH session per host per scan, shared by every check that reads the host
(hardening, accounts, audit, backups): collect once, evaluate many. Host keys are pinned on first use."""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from scanner.context import CheckContext, RunEnv
from scanner.errors import CheckError

MAX_OUTPUT = 4 * 1024 * 1024   # bytes read from one command at most


@dataclass
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    truncated: bool = False


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
                    raise CheckError("host-key-changed",
                                     f"{key.get_name()} host key of {name} changed: was {_fp(parts[2])}, "
                                     f"now {_fp(key.get_base64())}; authenticated checks stopped")
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

    def run(self, command: str, timeout: float = 20.0, *, privileged: bool = False) -> CommandResult:
        """Run a read-only command. `privileged` wraps it in non-interactive sudo when the credential says so."""
        if self.broken:
            raise CheckError("connectivity", self.broken)
        if privileged and self.sudo and self.user != "root":
            command = "sudo -n -- sh -c " + _quote(command)
        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("session closed by the host")
            chan = transport.open_session(timeout=timeout)
            chan.settimeout(timeout)
            # LC_ALL=C: parse stable English output; no tty: no colour codes or motd in the output
            chan.exec_command(f"LC_ALL=C; export LC_ALL; {command}")
            out, err = _read_all(chan, MAX_OUTPUT)
            status = chan.recv_exit_status()
            chan.close()
        except (TimeoutError, OSError) as e:
            raise CheckError("timeout", f"command did not finish in {timeout:.0f} s: {command[:60]}") from e
        except paramiko.SSHException as e:
            self.broken = f"SSH session to {self.address} dropped: {e}"
            raise CheckError("connectivity", self.broken) from None
        return CommandResult(command, status, out[0].decode("utf-8", "replace"), err[0].decode("utf-8", "replace"),
                             truncated=out[1])


def _read_all(chan: paramiko.Channel, limit: int) -> tuple[tuple[bytes, bool], tuple[bytes, bool]]:
    out, err = bytearray(), bytearray()
    truncated = False
    while True:
        if chan.recv_ready():
            data = chan.recv(65536)
            if len(out) < limit:
                out += data
            else:
                truncated = True
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)[: max(0, 65536 - len(err))]
        elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        else:
            chan.status_event.wait(0.05)
            if chan.closed and not chan.recv_ready():
                break
    return (bytes(out[:limit]), truncated), (bytes(err), False)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


_sessions_lock = threading.Lock()


def host_session(ctx: CheckContext) -> HostSession:
    """The shared session for ctx's host, opened on first use (one login per host per scan)."""
    env: RunEnv = ctx.env
    cache = env.__dict__.setdefault("_ssh_sessions", {})
    locks = env.__dict__.setdefault("_ssh_locks", {})
    with _sessions_lock:
        lock = locks.setdefault(ctx.host, threading.Lock())
    with lock:
        existing = cache.get(ctx.host)
        if isinstance(existing, CheckError):
            raise CheckError(existing.reason, existing.detail)
        if existing is not None:
            return existing
        try:
            cache[ctx.host] = _open(ctx)
        except CheckError as e:
            cache[ctx.host] = e       # do not retry a failed login from every check
            raise
        return cache[ctx.host]


def _open(ctx: CheckContext) -> HostSession:
    cred = ctx.credential("ssh")
    if cred is None:
        raise CheckError("no-credentials", "no ssh credentials for this host")
    port = cred.port or 22
    sock = ctx.connect(port, timeout=10)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        key = transport.get_remote_server_key()
        known = KnownHosts(ctx.env.known_hosts or Path.home() / ".local/share/tcmscan/known_hosts")
        status = known.check(ctx.host, port, key)
        pkey = _load_key(cred.key_file) if cred.key_file else None
        if pkey is not None:
            transport.auth_publickey(cred.user, pkey)
        elif cred.password is not None:
            transport.auth_password(cred.user, cred.password)
        else:
            raise CheckError("no-credentials", "credential has neither key_file nor password")
    except paramiko.AuthenticationException:
        transport.close()
        raise CheckError("auth", f"authentication as {cred.user} refused") from None
    except paramiko.SSHException as e:
        transport.close()
        raise CheckError("protocol", f"SSH handshake failed: {e}") from None
    except CheckError:
        transport.close()
        raise
    client = paramiko.SSHClient()
    client._transport = transport  # noqa: SLF001 - paramiko's documented way to wrap an authenticated Transport
    return HostSession(ctx.host, client, cred.user, cred.sudo, status)


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
