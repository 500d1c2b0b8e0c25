"""One probe = one connection, one ClientHello, one server flight read up to what we need, then close.

Every read is bounded by the probe's deadline (a server sending one byte a second cannot hold us) and by a
byte budget (an oversized handshake cannot fill memory). The outcome is a value, never an exception, except
what `connect()` raises itself (scope, connectivity: `CheckError` from the context).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from checks.tls import _wire as wire
from checks.tls._wire import ProtocolError

MAX_FLIGHT_BYTES = 256 * 1024     # ServerHello + Certificate chain; real chains are < 20 KiB
ACCEPTED, REFUSED, NOT_TLS, TIMEOUT, PROTOCOL = "accepted", "refused", "not-tls", "timeout", "protocol"


@dataclass
class Outcome:
    kind: str                       # ACCEPTED, REFUSED, NOT_TLS, TIMEOUT, PROTOCOL
    detail: str = ""                # alert name, "closed", what was wrong
    suite: int | None = None        # the suite the server chose (ACCEPTED)
    specs: list[int] = field(default_factory=list)      # SSLv2: the CIPHER-SPECs the server listed
    certificates: list[bytes] = field(default_factory=list)
    hello_retry: bool = False


class _Closed(Exception):
    pass


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float, limit: int = MAX_FLIGHT_BYTES) -> None:
        self.sock = sock
        self.deadline = deadline
        self.limit = limit
        self.buf = b""
        self.received = 0

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(min(65536, max(n - len(self.buf), 4096)))
            if not chunk:
                raise _Closed
            self.received += len(chunk)
            if self.received > self.limit:
                raise ProtocolError(f"oversized server flight (> {self.limit} bytes)")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


Connect = Callable[[], socket.socket]


def _run(connect: Connect, hello: bytes, timeout: float, read: Callable[[_Reader], Outcome]) -> Outcome:
    deadline = time.monotonic() + timeout
    sock = connect()
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.sendall(hello)
        except TimeoutError:
            return Outcome(TIMEOUT, "could not send the ClientHello in time")
        except OSError as e:
            return Outcome(REFUSED, f"connection dropped on ClientHello: {e.strerror or e}")
        reader = _Reader(sock, deadline)
        try:
            return read(reader)
        except TimeoutError:
            got = f" after {reader.received} bytes" if reader.received else ""
            return Outcome(TIMEOUT, f"no complete answer within {timeout:.1f} s{got}")
        except (ConnectionResetError, BrokenPipeError):
            if reader.received:
                return Outcome(PROTOCOL, f"connection reset after {reader.received} bytes (truncated answer)")
            return Outcome(REFUSED, "connection reset")
        except _Closed:
            if reader.received:
                return Outcome(PROTOCOL, f"connection closed after {reader.received} bytes (truncated answer)")
            return Outcome(REFUSED, "closed")
        except OSError as e:
            return Outcome(PROTOCOL, f"socket error: {e.strerror or e}")
    finally:
        sock.close()


def probe_tls(connect: Connect, version: int, suites: list[int] | tuple[int, ...], *, timeout: float,
              sni: str = "", key_shares: wire.KeyShares | None = None, shangmi: bool = False,
              want_certificate: bool = False) -> Outcome:
    """Offer `suites` at `version`; ACCEPTED with the chosen suite when the server answers a ServerHello for
    exactly that version (a HelloRetryRequest counts: it names the suite too)."""
    hello = wire.client_hello(version, suites, sni=sni, key_shares=key_shares, shangmi=shangmi)
    offered = set(suites)
    seen: list[wire.ServerHello] = []

    def read(r: _Reader) -> Outcome:
        handshake = b""
        hello_seen: wire.ServerHello | None = None
        first = True
        while True:
            try:
                ctype, _rv, length = wire.parse_record_header(r.take(5))
            except wire.NotTLS as e:
                if first:
                    return Outcome(NOT_TLS, str(e))
                raise
            first = False
            payload = r.take(length)
            if ctype == wire.ALERT:
                _level, desc = wire.parse_alert(payload)
                if hello_seen is None:
                    return Outcome(REFUSED, wire.alert_name(desc))
                return _accepted(hello_seen, [])
            if ctype != wire.HANDSHAKE:
                if hello_seen is not None:
                    return _accepted(hello_seen, [])
                raise ProtocolError(f"record type {ctype} before ServerHello")
            handshake += payload
            if len(handshake) > MAX_FLIGHT_BYTES:
                raise ProtocolError("oversized handshake message")
            messages, handshake = wire.split_handshakes(handshake)
            for mtype, body in messages:
                if hello_seen is None:
                    if mtype != wire.SERVER_HELLO:
                        raise ProtocolError(f"handshake message {mtype} before ServerHello")
                    sh = wire.parse_server_hello(body)
                    if sh.version != version:
                        return Outcome(REFUSED, f"server answered version 0x{sh.version:04x}")
                    if sh.cipher_suite not in offered:
                        raise ProtocolError(f"server chose suite 0x{sh.cipher_suite:04x} that was not offered")
                    hello_seen = sh
                    seen.append(sh)
                    if not want_certificate or version == 0x0304 or sh.hello_retry:
                        return _accepted(sh, [])
                elif mtype == wire.CERTIFICATE:
                    return _accepted(hello_seen, wire.parse_certificate_list(body))
                else:        # ServerKeyExchange / ServerHelloDone first: an anonymous suite, no certificate
                    return _accepted(hello_seen, [])

    def guarded(r: _Reader) -> Outcome:
        try:
            return read(r)
        except ProtocolError as e:
            return Outcome(PROTOCOL, str(e))
        except (_Closed, TimeoutError, ConnectionResetError):
            # The ServerHello was complete (the suite is accepted); the server just stopped before sending a
            # Certificate (a ShangMi responder that sends none, or a slow one): no certificate, not an error.
            if seen:
                return _accepted(seen[0], [])
            raise

    return _run(connect, hello, timeout, guarded)


def _accepted(sh: wire.ServerHello, certs: list[bytes]) -> Outcome:
    return Outcome(ACCEPTED, suite=sh.cipher_suite, certificates=certs, hello_retry=sh.hello_retry)


def probe_sslv2(connect: Connect, specs: list[int] | tuple[int, ...], *, timeout: float) -> Outcome:
    """SSL 2.0: the SERVER-HELLO lists every offered CIPHER-SPEC the server accepts, so one probe suffices."""
    hello = wire.sslv2_client_hello(specs)

    def read(r: _Reader) -> Outcome:
        try:
            head = r.take(2)
            if head[0] in (wire.ALERT, wire.HANDSHAKE) and head[1] == 3:   # a TLS-only server's answer
                rest = r.take(3)
                ctype, _v, length = wire.parse_record_header(head + rest)
                payload = r.take(length)
                if ctype == wire.ALERT:
                    return Outcome(REFUSED, wire.alert_name(wire.parse_alert(payload)[1]))
                return Outcome(REFUSED, "answered with a TLS record")
            hlen, blen = wire.sslv2_record_length(head)
            if hlen == 3:
                r.take(1)
            body = r.take(blen)
            if not body:
                raise ProtocolError("empty SSLv2 record")
            if body[0] == 0:      # SSLv2 ERROR message
                return Outcome(REFUSED, "SSLv2 error")
            sh = wire.parse_sslv2_server_hello(body)
        except ProtocolError as e:
            return Outcome(NOT_TLS if r.received < 16 else PROTOCOL, str(e))
        if sh.version != 0x0002:
            return Outcome(REFUSED, f"server answered version 0x{sh.version:04x}")
        accepted = [s for s in sh.cipher_specs if s in set(specs)]
        if not accepted:
            return Outcome(REFUSED, "no common cipher spec")
        return Outcome(ACCEPTED, specs=accepted, certificates=[sh.certificate] if sh.certificate else [])

    return _run(connect, hello, timeout, read)
