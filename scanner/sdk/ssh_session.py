"""One authenticated SSH session per host per scan, shared by every check that reads the host
(hardening, accounts, audit, backups): collect once, evaluate many.

Host keys are pinned per host, not per key type: once a host has a pin, the key it presents must be a
pinned one, whatever its type. A man in the middle who offers another key type is a changed key, and no
authentication is attempted. The pinned types are offered first, so an honest host holding several keys
presents the pinned one. An unpinned host is trusted on first use (mode "tofu", recorded as a scan event)
or refused before authentication (mode "strict": pin it first with `tcmscan keys pin`)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from scanner.core.files import private_dir
from scanner.sdk.bounded import BoundedSocket
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.credentials import Credential
from scanner.sdk.errors import CheckError

MAX_OUTPUT = 4 * 1024 * 1024   # bytes read from one command at most
# What a server may take and send until we are logged in (banner, key exchange, authentication): a real one
# sends a few KiB in well under a second. paramiko itself has no bound (scanner/sdk/bounded.py says why).
HANDSHAKE_SECONDS = 30.0
HANDSHAKE_MAX_BYTES = 256 * 1024
MAX_STDERR = 64 * 1024
# CSI / OSC / two-byte escape sequences: colour codes a login script may print
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")

# Key type as pinned (paramiko PKey.get_name(), OpenSSH known_hosts) -> the host-key algorithms that make a
# server present a key of that type, in paramiko's order of preference. SHA-1 "ssh-rsa" signatures are left
# out, as paramiko's defaults leave them out.
HOST_KEY_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


class HostKeyChanged(CheckError):
    """The host presented a key that is not pinned although the host has pins (another key of the pinned
    type, or a key of another type): authenticated checks on it stop, no authentication is attempted."""

    def __init__(self, name: str, key_type: str, new: str, pinned_type: str, old: str) -> None:
        what = (f"{key_type} host key of {name} changed: was {old}, now {new}" if key_type == pinned_type else
                f"host key of {name} changed: pinned {pinned_type} {old}, presented {key_type} {new}")
        super().__init__("host-key-changed", f"{what}; authenticated checks stopped")
        self.name, self.key_type, self.new, self.pinned_type, self.old = name, key_type, new, pinned_type, old

    def again(self) -> HostKeyChanged:
        """A fresh copy to raise in another attempt (an exception object is not shared between threads)."""
        return HostKeyChanged(self.name, self.key_type, self.new, self.pinned_type, self.old)

    def __reduce__(self) -> tuple:     # pickled as the plain CheckError it is to the runner
        return CheckError, self.args


class HostKeyUnpinned(CheckError):
    """Strict mode: the host has no pinned key, so nothing is sent to it."""

    def __init__(self, name: str, address: str, port: int, key_type: str, fingerprint: str) -> None:
        pin = f"tcmscan keys pin {address}" + ("" if port == 22 else f" --port {port}")
        super().__init__("host-key-unpinned", f"no pinned host key for {name} (it presented {key_type} "
                                              f"{fingerprint}); strict host keys: not logged in. Pin it: {pin}")

    def __reduce__(self) -> tuple:
        return CheckError, self.args


@dataclass
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    truncated: bool = False
    clean: bool = True        # False: the shell printed nothing of ours (no start marker): output untrusted


def host_name(address: str, port: int) -> str:
    """The host as OpenSSH's known_hosts names it: `address`, or `[address]:port` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(key: paramiko.PKey | str) -> str:
    """OpenSSH's SHA256 fingerprint (`ssh-keygen -l`) of a key or of its base64 blob."""
    b64 = key if isinstance(key, str) else key.get_base64()
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(b64)).digest()).decode().rstrip("=")


def preferred_algorithms(pinned_types: list[str]) -> list[str]:
    """Host-key algorithms to offer: those of the pinned types first (an honest host presents its pinned key),
    then paramiko's others, so that a host presenting another type shows us which key it has."""
    first = [a for t in HOST_KEY_ALGORITHMS if t in pinned_types for a in HOST_KEY_ALGORITHMS[t]]
    return first + [a for a in paramiko.Transport._preferred_keys if a not in first]  # noqa: SLF001


class KnownHosts:
    """Our own pin file (`name keytype base64`, names as OpenSSH writes them), separate from the user's
    ~/.ssh/known_hosts. Created 0600 in a directory created 0700: whoever can add a line can vouch for a host."""

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def pins(self, name: str) -> dict[str, str]:
        """The host's pinned keys: key type -> base64."""
        out: dict[str, str] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == name:
                out.setdefault(parts[1], parts[2])
        return out

    def check(self, address: str, port: int, key: paramiko.PKey, *, strict: bool = False) -> str:
        """'pinned' (the presented key is one of the host's pins), 'new' (no pin yet: recorded now), or raise
        HostKeyChanged (pins exist, none is this key) / HostKeyUnpinned (strict and no pin)."""
        name, ktype, b64 = host_name(address, port), key.get_name(), key.get_base64()
        with self._lock:
            pins = self.pins(name)
            if pins.get(ktype) == b64:
                return "pinned"
            if pins:
                # the pin the host should have presented: its own type, else the first one we offered
                ptype = ktype if ktype in pins else next(
                    (t for t in HOST_KEY_ALGORITHMS if t in pins), next(iter(pins)))
                raise HostKeyChanged(name, ktype, fingerprint(b64), ptype, fingerprint(pins[ptype]))
            if strict:
                raise HostKeyUnpinned(name, address, port, ktype, fingerprint(b64))
            self._append([(name, ktype, b64)])
            return "new"

    def pin(self, name: str, keys: list[tuple[str, str]], *, replace: bool = False) -> None:
        """Pin `keys` (type, base64) for the host; `replace` drops the host's earlier pins first."""
        with self._lock:
            if replace and self.path.exists():
                kept = [ln for ln in self.path.read_text().splitlines() if ln.split()[:1] != [name]]
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.unlink(missing_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write("".join(ln + "\n" for ln in kept))
                os.replace(tmp, self.path)
            have = self.pins(name)
            self._append([(name, t, b) for t, b in keys if have.get(t) != b])

    def _append(self, rows: list[tuple[str, str, str]]) -> None:
        if not rows:
            return
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write("".join(f"{n} {t} {b}\n" for n, t, b in rows))


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
    """Both streams of a channel up to the server's EOF (or close), bounded in size and in time (TimeoutError
    past `deadline`); then the exit status is waited for within the same deadline.

    Not up to the exit status: OpenSSH sends it as soon as the command exits and the rest of the output as it
    drains the pipe, so under load the whole output of a fast command can come after its exit status."""
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
        elif chan.eof_received or chan.closed:
            # EOF follows the last data on the channel: both buffers were just found empty
            break
        elif time.monotonic() > deadline:
            chan.close()
            raise TimeoutError("command timed out")
        else:
            # the channel's pipe is readable on data on either stream, EOF and close (paramiko's fileno())
            select.select([chan], [], [], 0.05)
    # the exit status may still be on its way (OpenSSH sends it when the command exits, EOF when the pipe closes)
    while not chan.exit_status_ready():
        if time.monotonic() > deadline:
            chan.close()
            raise TimeoutError("command timed out")
        chan.status_event.wait(0.05)
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
    """What the handshake saw of the host key (status pinned/new/changed/unpinned, type, fingerprints), or
    None when no handshake happened (no route, no SSH). Filled by the first attempt that opened the session."""
    return env.__dict__.get("_ssh_hostkeys", {}).get(address)


def _open(ctx: CheckContext) -> HostSession:
    cred = ctx.credential("ssh")
    if cred is None:
        raise CheckError("no-credentials", "no ssh credentials for this host")
    port = cred.port or 22
    known = KnownHosts(ctx.env.known_hosts or Path.home() / ".local/share/tcmscan/known_hosts")
    sock = ctx.connect(port, timeout=10, keep=True)   # shared by the host's later attempts
    transport = client_transport(sock)
    facts = ctx.env.__dict__.setdefault("_ssh_hostkeys", {})
    try:
        pins = known.pins(host_name(ctx.address, port))
        if pins:
            transport.get_security_options().key_types = preferred_algorithms(list(pins))
        start_client(transport, timeout=10)
        key = transport.get_remote_server_key()
        seen = {"port": port, "type": key.get_name(), "fingerprint": fingerprint(key)}
        try:
            status = known.check(ctx.address, port, key, strict=ctx.env.host_keys == "strict")
        except HostKeyChanged as e:
            facts[ctx.address] = {**seen, "status": "changed", "pinned_type": e.pinned_type,
                                  "pinned_fingerprint": e.old}
            raise
        except HostKeyUnpinned:
            facts[ctx.address] = {**seen, "status": "unpinned", "pinned_type": "", "pinned_fingerprint": ""}
            raise
        facts[ctx.address] = {**seen, "status": status, "pinned_type": key.get_name(),
                              "pinned_fingerprint": seen["fingerprint"]}
        if status == "new":   # a scan event, shown in the report: no key was vouched for before this login
            ctx.guard.events.append(f"SSH host key trusted on first use: {host_name(ctx.address, port)} "
                                    f"{key.get_name()} {seen['fingerprint']}, pinned in {known.path}")
        _authenticate(transport, cred)
        transport.sock.release()     # logged in: command output is bounded per command from here (MAX_OUTPUT)
    except CheckError:
        transport.close()
        raise
    except paramiko.AuthenticationException as e:
        transport.close()
        raise_if_over_budget(transport)
        raise CheckError("auth", f"authentication as {cred.user} refused ({e})") from None
    except (paramiko.SSHException, EOFError) as e:
        transport.close()
        raise_if_over_budget(transport)
        raise CheckError("protocol", f"SSH handshake failed: {e or 'connection closed by the server'}") from None
    except OSError as e:
        transport.close()
        raise_if_over_budget(transport)
        raise CheckError("connectivity", f"SSH connection to {ctx.address}:{port} failed: {e}") from None
    client = paramiko.SSHClient()
    client._transport = transport  # noqa: SLF001 - paramiko's documented way to wrap an authenticated Transport
    return HostSession(ctx.address, client, cred.user, cred.sudo, status)


def client_transport(sock: object) -> paramiko.Transport:
    """A paramiko client Transport over `sock` bounded in time and bytes until `transport.sock.release()`
    (HANDSHAKE_SECONDS, HANDSHAKE_MAX_BYTES)."""
    return paramiko.Transport(BoundedSocket(sock, seconds=HANDSHAKE_SECONDS, max_bytes=HANDSHAKE_MAX_BYTES,
                                            what="SSH handshake"))


def raise_if_over_budget(transport: paramiko.Transport) -> None:
    """After paramiko failed: CheckError(timeout|protocol) when the cause was the peer using up the handshake's
    time or bytes (paramiko words that as a lost connection or a banner it could not read)."""
    if isinstance(transport.sock, BoundedSocket):
        transport.sock.raise_if_exceeded()


def start_client(transport: paramiko.Transport, timeout: float) -> None:
    """paramiko's handshake, failing only with SSHException, EOFError or OSError, or CheckError when the peer used up
    the handshake's budget or did not finish it within `timeout` (paramiko's start_client then returns as if
    all went well). Its Transport thread dies of whatever a malformed packet raises (a UnicodeDecodeError on a
    name-list that is not UTF-8, ...) and start_client re-raises that as it is, which is the peer's fault, not
    ours."""
    try:
        transport.start_client(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError):
        raise_if_over_budget(transport)
        raise
    except Exception as e:  # noqa: BLE001 - anything paramiko's parser raises on what the peer sent
        raise paramiko.SSHException(f"malformed reply ({type(e).__name__}: {str(e)[:80]})") from None
    if not transport.completion_event.is_set():
        transport.close()
        raise_if_over_budget(transport)
        raise CheckError("timeout", f"SSH handshake not complete within {timeout:.0f} s")


def _authenticate(transport: paramiko.Transport, cred: Credential) -> None:
    """Keys before any password: the key file, then the keys of ssh-agent ($SSH_AUTH_SOCK), then the password.
    A password therefore reaches only a host that refused every key (and whose host key passed the pin check)."""
    tried: list[str] = []
    encrypted = False
    if cred.key_file:
        key = _load_key(cred.key_file, cred.key_passphrase)
        if key is None:        # encrypted, no passphrase file: the agent may hold it
            encrypted = True
        elif _auth_key(transport, cred.user, key):
            return
        else:
            tried.append("key file")
    agent_keys = 0
    try:
        agent = paramiko.Agent()
    except (paramiko.SSHException, OSError):   # $SSH_AUTH_SOCK names no running agent
        agent = None
    if agent is not None:
        try:
            for k in agent.get_keys():
                agent_keys += 1
                if _auth_key(transport, cred.user, k):
                    return
        finally:
            agent.close()
    if agent_keys:
        tried.append(f"{agent_keys} ssh-agent key{'s' if agent_keys > 1 else ''}")
    if cred.password is not None:
        try:
            transport.auth_password(cred.user, cred.password)
            return
        except paramiko.AuthenticationException:
            tried.append("password")
    if tried:
        raise paramiko.AuthenticationException("tried " + ", ".join(tried))
    if encrypted:
        raise CheckError("auth", f"key file {cred.key_file} is encrypted: give key_passphrase_file in the "
                                 "credential, or add the key to ssh-agent ($SSH_AUTH_SOCK)")
    raise CheckError("no-credentials", "credential has neither key_file nor password, and no ssh-agent "
                                       "key is available ($SSH_AUTH_SOCK)")


def _auth_key(transport: paramiko.Transport, user: str, key: paramiko.PKey) -> bool:
    try:
        transport.auth_publickey(user, key)
    except paramiko.AuthenticationException:
        return False
    return True


_keys_lock = threading.Lock()
_keys: dict[tuple[str, int, str | None], paramiko.PKey | CheckError | None] = {}


def _load_key(path: str, passphrase: str | None) -> paramiko.PKey | None:
    """The private key in `path` (any type paramiko reads), decrypted with `passphrase` when encrypted; None
    when it is encrypted and no passphrase was given. Loaded once per scan: the key derivation of an
    encrypted OpenSSH key takes a noticeable fraction of a second."""
    try:
        cache_key = (path, os.stat(path).st_mtime_ns, passphrase)
    except OSError as e:
        raise CheckError("auth", f"cannot read private key {path}: {e.strerror}") from None
    with _keys_lock:
        if cache_key not in _keys:
            try:
                _keys[cache_key] = _read_key(path, passphrase)
            except CheckError as e:
                _keys[cache_key] = e
        found = _keys[cache_key]
    if isinstance(found, CheckError):
        raise CheckError(found.reason, found.detail)
    return found


def _read_key(path: str, passphrase: str | None) -> paramiko.PKey | None:
    # cryptography, under paramiko, says "encrypted" with a TypeError and "cannot decrypt" with a ValueError
    try:
        return paramiko.PKey.from_path(path)
    except TypeError:
        pass                                  # encrypted
    except (ValueError, paramiko.SSHException, OSError) as e:
        raise CheckError("auth", f"cannot read private key {path}: "
                                 f"{getattr(e, 'strerror', None) or 'not a private key paramiko reads'}") from None
    if passphrase is None:
        return None
    try:
        return paramiko.PKey.from_path(path, passphrase.encode())
    except (TypeError, ValueError, paramiko.SSHException):
        raise CheckError("auth", f"wrong passphrase for key file {path} (key_passphrase_file)") from None


def close_sessions(env: RunEnv) -> None:
    for s in env.__dict__.get("_ssh_sessions", {}).values():
        if isinstance(s, HostSession):
            s.client.close()
