"""TLS on a fragile device's paced connection, through OpenSSL's memory BIOs.

An `ssl.SSLSocket` lets OpenSSL write its handshake flights to the socket itself, past our pacing: under load
it read the server's flight and sent the client's Finished in the same call, 5 ms after the ClientHello.
Here OpenSSL only ever writes into a buffer, and every byte it wants sent (handshake flights, records,
alerts) leaves through the paced socket's `sendall`, one paced segment at a time: the strict minimum spacing
holds for TLS as for plain TCP. It offers the part of the socket API the checks use on a TLS connection.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

# Plaintext per record sent: with the record's header, padding and tag it stays within one paced segment
# (PacedSocket.SEGMENT, 1400 bytes).
RECORD_PLAINTEXT = 1300


class PacedTLSSocket:
    """A TLS client connection over a PacedSocket (see the module's docstring)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False,
                                     server_hostname=server_hostname)
        self.guard = getattr(sock, "guard", None)
        self.context = context
        self.server_hostname = server_hostname

    # ---- the wire
    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._sock.sendall(data)

    def _fill(self, deadline: float | None = None) -> None:
        """More ciphertext from the socket (its timeout, or what is left to `deadline`); EOF is handed to
        OpenSSL, which raises on it."""
        saved = self._sock.gettimeout()
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("TLS handshake timed out")
            self._sock.settimeout(left)
        try:
            data = self._sock.recv(65536)
        finally:
            if deadline is not None:
                self._sock.settimeout(saved)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def do_handshake(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill(deadline)

    # ---- the socket API the checks use
    def send(self, data: Any, flags: int = 0) -> int:
        n = self._tls.write(bytes(data)[:RECORD_PLAINTEXT])
        self._flush()
        return n

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        while view:
            view = view[self.send(view):]

    def recv(self, bufsize: int = 65536, flags: int = 0) -> bytes:
        while True:
            try:
                return self._tls.read(bufsize)
            except ssl.SSLWantReadError:
                self._flush()            # TLS 1.3 may owe the peer a record (a key update's answer)
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""               # close_notify, or the peer just closed: EOF, as SSLSocket reports it

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        data = self.recv(nbytes or len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def pending(self) -> int:
        return self._tls.pending()

    def version(self) -> str | None:
        return self._tls.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls.cipher()

    def shared_ciphers(self) -> list[tuple[str, str, int]] | None:
        return self._tls.shared_ciphers()

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def fileno(self) -> int:
        return self._sock.fileno()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PacedTLSSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
