"""A connection as a third-party client library sees it: every read ends by one deadline, and at most `max_bytes`
arrive in all.

paramiko, PyMySQL and ftplib read with per-call socket timeouts, which every byte restarts (a server sending one
byte a second holds them for hours), and trust a peer's length fields (paramiko reads a KEXINIT announcing 4 GiB
for as long as the server sends it, into one growing buffer: 800 MB in 10 s, measured against the lab's `absurd`
host). Handing them a `BoundedSocket` instead of the socket ends both: past the deadline or the byte budget, a read
raises `BudgetExceeded` (a ConnectionAbortedError, which the libraries treat as a dropped connection and stop), and
`raise_if_exceeded()` then turns it into the CheckError that says why. `release()` lifts both limits once the
library has what it needed from the peer (an authenticated SSH session shared by later attempts).
"""

from __future__ import annotations

import errno
import io
import socket
import time
from typing import Any

from scanner.sdk.errors import CheckError

READ_CHUNK = 65536        # never ask the kernel (and the allocator) for more per read, whatever a library asks


class BudgetExceeded(ConnectionAbortedError):
    """The peer used up the time or the bytes a BoundedSocket allows; `reason` is "timeout" or "protocol"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(errno.ECONNABORTED, detail)
        self.reason = reason
        self.detail = detail


class BoundedSocket:
    """Wraps a connected socket: recv/recv_into/makefile("rb" or "r") bounded; everything else passes through."""

    def __init__(self, sock: socket.socket, *, seconds: float, max_bytes: int, what: str) -> None:
        self.sock = sock
        self.what = what
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.max_bytes = max_bytes
        self.received = 0
        self.limited = True
        self.exceeded: BudgetExceeded | None = None
        self._timeout: float | None = sock.gettimeout()

    # -- the limits ------------------------------------------------------------------------------------------
    def release(self) -> None:
        """No more limits (the socket's own timeout, as last set, applies again)."""
        self.limited = False
        self.sock.settimeout(self._timeout)

    def restart(self, seconds: float) -> None:
        """A new deadline, `seconds` from now (the next phase of a session has its own time)."""
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def raise_if_exceeded(self) -> None:
        """After a library failed: the CheckError saying the peer ran out of time or bytes, if it did."""
        if self.exceeded is not None:
            raise CheckError(self.exceeded.reason, self.exceeded.detail)

    def _exceed(self, reason: str, detail: str) -> BudgetExceeded:
        self.exceeded = self.exceeded or BudgetExceeded(reason, detail)
        return BudgetExceeded(reason, detail)

    def _before_read(self, n: int) -> int:
        if not self.limited:
            return n
        if self.exceeded is not None:
            raise BudgetExceeded(self.exceeded.reason, self.exceeded.detail)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._exceed("timeout", self._late())
        if self.received > self.max_bytes:
            raise self._exceed("protocol", f"{self.what}: the peer sent more than {self.max_bytes} bytes")
        self.sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        return max(1, min(n or READ_CHUNK, READ_CHUNK))

    def _timed_out(self) -> None:
        """A read timed out: ours (the deadline) or the library's own, shorter, timeout (it may retry)."""
        if self.limited and time.monotonic() >= self.deadline:
            raise self._exceed("timeout", self._late())

    def _late(self) -> str:
        if not self.received:
            return f"{self.what}: nothing received within {self.seconds:.0f} s"
        return f"{self.what}: not done within {self.seconds:.0f} s (the peer is too slow)"

    # -- reads -----------------------------------------------------------------------------------------------
    def recv(self, n: int, flags: int = 0) -> bytes:
        n = self._before_read(n)
        try:
            data = self.sock.recv(n, flags)
        except TimeoutError:
            self._timed_out()
            raise
        self.received += len(data)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer)
        n = self._before_read(nbytes or len(view))
        try:
            got = self.sock.recv_into(view[:n], n, flags)
        except TimeoutError:
            self._timed_out()
            raise
        self.received += got
        return got

    def makefile(self, mode: str = "rb", buffering: int | None = None, *, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None) -> Any:
        """A read-only file over the bounded reads ("rb" binary, "r" text), as PyMySQL and ftplib use it."""
        if mode not in ("r", "rb"):
            raise ValueError(f"BoundedSocket.makefile: mode {mode!r} not supported")
        reader = io.BufferedReader(_RawReader(self), buffering or io.DEFAULT_BUFFER_SIZE)
        if mode == "rb":
            return reader
        return io.TextIOWrapper(reader, encoding=encoding, errors=errors, newline=newline)

    # -- pass-through ----------------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self.sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def __getattr__(self, name: str) -> Any:     # send, sendall, close, shutdown, fileno, getpeername, ...
        return getattr(self.sock, name)


class _RawReader(io.RawIOBase):
    def __init__(self, bounded: BoundedSocket) -> None:
        super().__init__()
        self._b = bounded

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._b.recv_into(buffer)
