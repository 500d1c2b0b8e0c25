"""What a check may use while it runs: the target, a guarded socket factory, credentials, pacing.

Every connection a check opens goes through `CheckContext.connect` (or `allow()` first when a library
opens its own socket): the scope is checked again there, safe-mode pacing applied, and a device that
stops answering is taken out of the scan.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scanner.core.knowledge import knowledge
from scanner.core.models import Asset, Observation, Service
from scanner.core.scope import Scope
from scanner.sdk.credentials import Credential, CredentialStore
from scanner.sdk.errors import CheckError
from scanner.sdk.paced_tls import PacedTLSSocket

SAFE_MODE_PACKETS_PER_SECOND = 10.0   # docs/baselines.md#safe-scanning (proposed)
STOP_AFTER_SILENT_TRIES = 3           # a fragile device that fails this many connections in a row is left alone
SLOWDOWN_FACTOR = 4.0                 # response time this many times the first seen: back off
# Spacing = interval x this: a capture's timestamps and the syscall's own duration never bring two packets
# closer than the interval.
PACE_MARGIN = 1.02

T = TypeVar("T")


class HostGuard:
    """Per-host pacing and health, shared by every attempt on that host (thread-safe)."""

    def __init__(self, address: str, rate: float | None) -> None:
        self.address = address
        self.interval = 1.0 / rate if rate else 0.0
        self._lock = threading.Lock()
        # The first paced packet also waits one interval: discovery's last probe to this device may have
        # left a moment ago, and the spacing holds across the hand-over.
        self._send_lock = threading.Lock()
        self._last_end = time.monotonic()
        self.silent = 0              # failed exchanges in a row (connects and application answers)
        self.app_silent = 0          # of which: connected, then the application did not answer
        self.first_rtt: float | None = None
        self.baseline: dict[str, float] = {}   # first response time per kind (connect, dicom, hl7, ...)
        self.stopped_reason = ""
        self.events: list[str] = []

    def paced(self, send: Callable[[], T]) -> T:
        """Run `send` (a call that puts one packet on the wire) no sooner than `interval` after the previous
        paced call ended: a strict minimum spacing between our packets to the device, whatever the timer's
        jitter or a sleeping thread's late wake-up (reserved slots let a late send and an on-time one land
        85 ms apart). The lock is held across the send, so no other send of ours slips in between."""
        if not self.interval:
            return send()
        with self._send_lock:
            while (wait := self._last_end + self.interval * PACE_MARGIN - time.monotonic()) > 0:
                time.sleep(wait)
            try:
                return send()
            finally:
                self._last_end = time.monotonic()

    def pace(self) -> None:
        """For a packet a library sends right after this returns, on a socket we do not hold."""
        self.paced(lambda: None)

    def record(self, ok: bool, rtt: float | None = None, kind: str = "connect", why: str = "") -> None:
        """One exchange with the device: `ok` False when it did not answer (connect or read timed out).

        Response times are compared per `kind` (a TCP handshake and a DICOM association take different
        times), so a device whose answers slow to SLOWDOWN_FACTOR times the first one gets half our rate.
        """
        with self._lock:
            if not ok:
                self.silent += 1
                if kind != "connect":
                    self.app_silent += 1
                if self.interval and self.silent >= STOP_AFTER_SILENT_TRIES and not self.stopped_reason:
                    self.stopped_reason = (f"stopped answering after {self.silent} failed exchanges"
                                           + (f" (last: {why})" if why else "") + ": not probed further")
                    self.events.append(self.stopped_reason)
                return
            # A TCP handshake from a device whose application went silent is no sign of recovery.
            if kind != "connect" or not self.app_silent:
                self.silent = 0
            if kind != "connect":
                self.app_silent = 0
            if rtt is None:
                return
            first = self.baseline.get(kind)
            if first is None:
                self.baseline[kind] = max(rtt, 0.001)
                if kind == "connect":
                    self.first_rtt = self.baseline[kind]
            elif self.interval and rtt > SLOWDOWN_FACTOR * first and rtt > 0.05:
                self.interval *= 2   # the device slows: halve our rate
                self.baseline[kind] = rtt   # the next halving needs a further slowdown, not the same one
                self.events.append(f"{kind} response time {rtt * 1000:.0f} ms (first {first * 1000:.0f} ms): "
                                   f"rate halved to {1 / self.interval:.2f}/s")


class PacedSocket(socket.socket):
    """A TCP socket whose every send waits for the device's pace (safe mode): the SYN is paced by
    `CheckContext._open`, payload segments here, so at least 1/rate seconds between our packets. close() ends
    the connection at once."""

    guard: HostGuard | None = None
    SEGMENT = 1400      # below a typical MSS: one paced send is one segment

    def send(self, data, flags: int = 0) -> int:
        chunk = bytes(data)[:self.SEGMENT]
        plain_send = super().send
        if self.guard is None:
            return plain_send(chunk, flags)
        return self.guard.paced(lambda: plain_send(chunk, flags))

    def sendall(self, data, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        while view:
            n = self.send(view, flags)
            view = view[n:]

    def close(self) -> None:
        # Whoever closes (a check, or a library such as paramiko from its own thread), the connection ends
        # now: a plain close() is deferred while another thread is blocked in recv on this socket, and the
        # device would briefly see two of our connections at once.
        try:
            self.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass
        super().close()


# SSH host keys (scanner/sdk/ssh_session.py): "tofu" pins an unknown host's key on first use (a scan event),
# "strict" logs in only to a host whose key was pinned beforehand (`tcmscan keys pin`).
HOST_KEY_MODES = ("tofu", "strict")


@dataclass
class RunEnv:
    """Live objects a worker needs; rebuilt on each worker from the scan's stored settings.

    `scope` is the scan's Scope (allowlist and do-not-touch list); a list of allowlist texts is parsed into one,
    for tools and tests that run a single attempt."""

    scope: Scope
    credentials: CredentialStore = field(default_factory=CredentialStore)
    known_hosts: Path | None = None
    host_keys: str = HOST_KEY_MODES[0]
    vantage: str = "user"
    guards: dict[str, HostGuard] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not isinstance(self.scope, Scope):
            self.scope = Scope.parse(self.scope)

    def guard(self, address: str, fragile: bool) -> HostGuard:
        with self._lock:
            g = self.guards.get(address)
            if g is None:
                g = self.guards[address] = HostGuard(address, SAFE_MODE_PACKETS_PER_SECOND if fragile else None)
            return g


class CheckContext:
    def __init__(self, *, asset: Asset, service: Service | None, check_id: str, env: RunEnv, timeout: float,
                 safe_mode: bool, options: dict[str, Any] | None = None) -> None:
        self.asset = asset
        self.service = service
        self.port = service.port if service else None
        self.check_id = check_id
        self.env = env
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.safe_mode = safe_mode
        self.options = options or {}
        self.guard = env.guard(asset.address, safe_mode)
        self._sockets: list[socket.socket] = []

    @property
    def address(self) -> str:
        return self.asset.address

    @property
    def knowledge(self) -> dict[str, Any]:
        return knowledge()

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CheckError("timeout", f"attempt exceeded its {self.timeout:.0f} s budget")
        return left

    def allow(self, address: str | None = None) -> None:
        """Call before any packet a library sends on our behalf: scope, device health, pacing."""
        self._may_send(address or self.address)
        self.guard.pace()

    def _may_send(self, address: str) -> None:
        if not self.env.scope.contains(address):
            # Never reached through normal planning: a check asked for an address outside the scope.
            raise RuntimeError(f"refused: {address} is outside the scan scope")
        if self.guard.stopped_reason:
            raise CheckError("device-stopped", self.guard.stopped_reason)

    def connect(self, port: int | None = None, timeout: float | None = None, *, keep: bool = False
                ) -> socket.socket:
        """A TCP connection to the asset, with the scope re-checked and safe-mode pacing applied.

        The runner closes it when the attempt ends (so no connection outlives its attempt: one connection
        at a time per fragile device holds on the wire); `keep=True` only for a session shared across
        attempts (the SSH host session), which its owner closes."""
        port = port if port is not None else self.port
        if port is None:
            raise ValueError("connect() needs a port for host-level checks")
        self._may_send(self.address)     # the SYN is paced in _open
        t = min(timeout or self.remaining(), self.remaining())
        start = time.monotonic()
        try:
            sock = self._open(port, t)
        except TimeoutError:
            self.guard.record(False, why=f"connect to port {port} timed out")
            raise CheckError("timeout", f"no answer from {self.address}:{port} within {t:.1f} s") from None
        except OSError as e:
            self.guard.record(False, why=f"connect to port {port}: {e.strerror or e}")
            raise CheckError("connectivity", f"{self.address}:{port}: {e.strerror or e}") from None
        self.guard.record(True, time.monotonic() - start)
        sock.settimeout(min(t, self.remaining()))
        if not keep:
            self._sockets.append(sock)
        return sock

    def wrap_tls(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None = None
                 ) -> ssl.SSLSocket | PacedTLSSocket:
        """TLS on a connection from `connect`. On a fragile device OpenSSL writes into a buffer and every byte
        it sends, handshake flights included, leaves through the paced socket (scanner/sdk/paced_tls.py)."""
        if not isinstance(sock, PacedSocket):
            return context.wrap_socket(sock, server_hostname=server_hostname)
        tls = PacedTLSSocket(sock, context, server_hostname)
        self._sockets.append(tls)    # type: ignore[arg-type]
        tls.do_handshake(min(sock.gettimeout() or self.remaining(), self.remaining()))
        return tls

    def close_all(self) -> None:
        """Close every connection this attempt opened and did not keep (called by the runner)."""
        for sock in self._sockets:
            # shutdown first: close() alone is deferred while another thread (a library's reader, e.g.
            # paramiko's transport) is blocked in recv on the socket, and the FIN would trail the next attempt
            for step in (lambda s=sock: s.shutdown(socket.SHUT_RDWR), sock.close):
                try:
                    step()
                except OSError:
                    pass
        self._sockets.clear()

    def _open(self, port: int, timeout: float) -> socket.socket:
        if not self.guard.interval:
            return socket.create_connection((self.address, port), timeout=timeout)
        # Safe mode: the same connection, as a socket that paces its sends. A non-blocking connect sends the
        # SYN inside the paced call and returns at once; the handshake's end is waited for outside it.
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = PacedSocket(family, socket.SOCK_STREAM)
        sock.guard = self.guard
        try:
            sock.setblocking(False)
            err = self.guard.paced(lambda: sock.connect_ex((self.address, port)))
            if err in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                if not select.select([], [sock], [], timeout)[1]:
                    raise TimeoutError("connect timed out")
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def note_response(self, seconds: float, kind: str) -> None:
        """A check reports how long the device took to answer at the application level (back-off input)."""
        self.guard.record(True, seconds, kind=kind)

    def note_silence(self, why: str) -> None:
        """The device accepted the connection but then did not answer: counts towards stopping."""
        self.guard.record(False, kind="app", why=why)

    def credential(self, type_: str) -> Credential | None:
        return self.env.credentials.find(self.address, type_)

    def observation(self, key: str, data: dict[str, Any], port: int | None | str = "service") -> Observation:
        return Observation(check_id=self.check_id, address=self.address, port=self.port if port == "service" else port,
                           key=key, data=data)
