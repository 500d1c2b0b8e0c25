"""STARTTLS: the cleartext exchange that turns an SMTP, FTP, IMAP, POP3 or LDAP connection into one a ClientHello
may follow (RFC 3207, RFC 4217, RFC 3501 6.2.1, RFC 2595 4, RFC 4511 4.14) -- and RDP's X.224 negotiation asking
for TLS (MS-RDPBCGR 2.2.1.1/2.2.1.2, scanner/sdk/x224.py), after which RDP's TLS handshake starts the same way.

tls.scan runs `negotiate` on every probe connection before its ClientHello, so each probe stays one TCP
connection; the TLS part is then exactly what it is for a direct TLS port. The exchange is bounded:
MAX_EXCHANGE_BYTES for everything the server sends before TLS (an endless banner cannot fill memory) and the
caller's deadline for all of it (a silent or one-byte-a-second server cannot hold us).

Which services and ports speak which protocol is a fact table: baselines/knowledge/starttls.yaml.
"""

from __future__ import annotations

import functools
import re
import socket
import time
from typing import Any

import yaml

from scanner.sdk import KNOWLEDGE_DIR, CheckError
from scanner.sdk.x224 import (
    PROTOCOL_SSL,
    X224Error,
    connection_request,
    parse_connection_confirm,
    tpkt_length,
)

MAX_EXCHANGE_BYTES = 16 * 1024     # greeting + capabilities + reply; real servers send < 2 KiB
MAX_LINE = 4096                    # RFC 5321 allows 512 per reply line; generous for odd banners
UNIDENTIFIED = ("", "unknown", "tcpwrapped")
PROTOCOLS = ("smtp", "ftp", "imap", "pop3", "ldap", "rdp")
_REPLY = re.compile(rb"^(\d{3})([ -]|$)")    # SMTP / FTP reply line: code, then space, hyphen or nothing


class NotOffered(Exception):
    """The server speaks the protocol but does not offer STARTTLS; `reply` is what it said instead."""

    def __init__(self, protocol: str, reply: str) -> None:
        super().__init__(f"{protocol}: STARTTLS not offered: {reply}")
        self.protocol = protocol
        self.reply = reply


@functools.cache
def table() -> dict[str, Any]:
    """protocol -> {services: [...], ports: [...]} from the knowledge file (read once; META needs it at import)."""
    doc = yaml.safe_load((KNOWLEDGE_DIR / "starttls.yaml").read_text(encoding="utf-8"))
    return {p: doc["protocols"][p] for p in PROTOCOLS}


def services() -> tuple[str, ...]:
    return tuple(s for p in PROTOCOLS for s in table()[p]["services"])


def ports() -> tuple[int, ...]:
    return tuple(int(n) for p in PROTOCOLS for n in table()[p]["ports"])


def protocol_for(name: str, port: int) -> str:
    """The STARTTLS protocol of a cleartext service, "" when it has none. A known service name decides;
    the port decides only when discovery could not name the service."""
    for p in PROTOCOLS:
        if name in table()[p]["services"]:
            return p
    if name in UNIDENTIFIED:
        for p in PROTOCOLS:
            if port in table()[p]["ports"]:
                return p
    return ""


class _Lines:
    """CRLF lines from the socket, bounded by a deadline and a byte budget for the whole exchange."""

    def __init__(self, sock: socket.socket, deadline: float, protocol: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.protocol = protocol
        self.buf = b""
        self.received = 0
        self.log: list[bytes] = []      # the lines read, for error details

    def _fail(self, reason: str, what: str) -> CheckError:
        got = f" after {self.received} bytes" if self.received else ""
        last = f"; last line {self.log[-1][:80]!r}" if self.log else ""
        return CheckError(reason, f"{self.protocol} STARTTLS: {what}{got}{last}")

    def _read_more(self) -> None:
        """One more chunk into the buffer, under the exchange's deadline and byte budget."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._fail("timeout", "no complete reply in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(4096)
        except TimeoutError:
            raise self._fail("timeout", "no complete reply in time") from None
        except OSError as e:
            raise self._fail("protocol", f"connection error during the cleartext exchange: {e.strerror or e}") \
                from None
        if not chunk:
            raise self._fail("protocol", "server closed the connection during the cleartext exchange")
        self.received += len(chunk)
        if self.received > MAX_EXCHANGE_BYTES:
            raise self._fail("protocol", f"cleartext exchange longer than {MAX_EXCHANGE_BYTES} bytes")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise self._fail("protocol", f"line longer than {MAX_LINE} bytes")
            self._read_more()
        raw, self.buf = self.buf.split(b"\n", 1)
        raw = raw.rstrip(b"\r")
        self.log.append(raw)
        return raw

    def reply(self) -> tuple[int, list[str]]:
        """An SMTP/FTP reply: its code and the text of every line (multi-line 'ddd-' ... 'ddd ')."""
        first = self.line()
        m = _REPLY.match(first)
        if not m:
            raise self._fail("protocol", "not a reply line")
        code = m.group(1)
        texts = [first[4:].decode("latin-1")]
        if m.group(2) == b"-":
            while True:
                ln = self.line()
                texts.append(ln[4:].decode("latin-1") if ln[:3] == code else ln.decode("latin-1"))
                if ln[:3] == code and ln[3:4] in (b" ", b""):
                    break
        return int(code), texts

    def exact(self, n: int) -> bytes:
        """`n` raw bytes (binary protocols), under the same deadline and byte budget as lines."""
        while len(self.buf) < n:
            self._read_more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._fail("timeout", "no time left to send")
        self.sock.settimeout(left)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise self._fail("timeout", "could not send in time") from None
        except OSError as e:
            raise self._fail("protocol", f"connection dropped: {e.strerror or e}") from None

    def done(self) -> None:
        """After the go-ahead nothing may be pending: bytes the server sent ahead would be read as TLS
        (the injection flaw of CVE-2011-0411 in reverse); a correct server waits for our ClientHello."""
        if self.buf:
            raise self._fail("protocol", f"{len(self.buf)} unexpected bytes after the STARTTLS go-ahead")


def _said(texts: list[str], code: int | None = None) -> str:
    s = " / ".join(t.strip() for t in texts if t.strip())
    return (f"{code} {s}" if code is not None else s)[:200]


def _quit(r: _Lines, command: bytes) -> None:
    """Say goodbye on a connection we leave in cleartext; best effort, no wait for the answer."""
    try:
        r.sock.settimeout(0.2)
        r.sock.sendall(command)
    except OSError:
        pass


def _ehlo_name(sock: socket.socket) -> bytes:
    """Our own address as an address literal (RFC 5321 4.1.3): no made-up host name."""
    try:
        name = sock.getsockname()
    except OSError:
        name = ()
    addr = str(name[0]) if isinstance(name, tuple) and name else "127.0.0.1"   # a TCP socket always has one
    return (f"[IPv6:{addr}]" if ":" in addr else f"[{addr}]").encode()


def _smtp(r: _Lines) -> None:
    code, texts = r.reply()
    if code != 220:
        raise r._fail("protocol", f"greeting is not 220: {_said(texts, code)}")
    r.send(b"EHLO " + _ehlo_name(r.sock) + b"\r\n")
    code, texts = r.reply()
    if code != 250:            # a HELO-only server: no extensions, so no STARTTLS
        _quit(r, b"QUIT\r\n")
        raise NotOffered("smtp", f"EHLO refused: {_said(texts, code)}")
    keywords = {t.split()[0].upper() for t in texts[1:] if t.split()}
    if "STARTTLS" not in keywords:
        _quit(r, b"QUIT\r\n")
        raise NotOffered("smtp", "EHLO lists no STARTTLS: " + " ".join(sorted(keywords))[:180])
    r.send(b"STARTTLS\r\n")
    code, texts = r.reply()
    if code != 220:            # 454 TLS not available, 501, ...
        _quit(r, b"QUIT\r\n")
        raise NotOffered("smtp", f"STARTTLS refused: {_said(texts, code)}")


def _ftp(r: _Lines) -> None:
    code, texts = r.reply()
    if code == 120:            # "service ready in n minutes", then the real greeting
        code, texts = r.reply()
    if code != 220:
        raise r._fail("protocol", f"greeting is not 220: {_said(texts, code)}")
    r.send(b"AUTH TLS\r\n")
    code, texts = r.reply()
    if code == 234:
        return
    if 400 <= code < 600:      # 500/502/504 unknown, 530 (vsftpd without TLS), 534, 431
        _quit(r, b"QUIT\r\n")
        raise NotOffered("ftp", f"AUTH TLS refused: {_said(texts, code)}")
    raise r._fail("protocol", f"unexpected answer to AUTH TLS: {_said(texts, code)}")


def _imap_caps(text: str) -> set[str]:
    return {w.upper() for w in text.replace("[", " ").replace("]", " ").split()}


def _imap_tagged(r: _Lines, tag: bytes) -> tuple[str, str, set[str]]:
    """Read to the tagged completion: (OK|NO|BAD, its text, capabilities seen in untagged CAPABILITY)."""
    caps: set[str] = set()
    while True:
        ln = r.line()
        if ln.startswith(b"* "):
            words = ln.decode("latin-1").split()
            if len(words) > 1 and words[1].upper() == "CAPABILITY":
                caps |= _imap_caps(" ".join(words[2:]))
            elif len(words) > 1 and words[1].upper() == "BYE":
                raise r._fail("protocol", "server said BYE")
            continue
        if ln.startswith(tag + b" "):
            rest = ln[len(tag) + 1:].decode("latin-1")
            status = rest.split(" ", 1)[0].upper()
            if status not in ("OK", "NO", "BAD"):
                raise r._fail("protocol", "tagged reply is not OK/NO/BAD")
            return status, rest[:200], caps
        raise r._fail("protocol", "not an IMAP response line")


def _imap(r: _Lines) -> None:
    greeting = r.line().decode("latin-1")
    words = greeting.split()
    if len(words) < 2 or words[0] != "*" or words[1].upper() not in ("OK", "PREAUTH"):
        raise r._fail("protocol", "greeting is not '* OK' / '* PREAUTH'")
    if words[1].upper() == "PREAUTH":       # already authenticated: STARTTLS is no longer allowed (RFC 3501 6.2.1)
        _quit(r, b"z LOGOUT\r\n")
        raise NotOffered("imap", f"pre-authenticated session, STARTTLS not allowed: {greeting[:160]}")
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", greeting, re.IGNORECASE)
    if m:                                    # most servers put their capabilities in the greeting: one round trip saved
        caps = _imap_caps(m.group(1))
    else:
        r.send(b"a1 CAPABILITY\r\n")
        status, text, caps = _imap_tagged(r, b"a1")
        if status != "OK":
            raise r._fail("protocol", f"CAPABILITY failed: {text}")
    if "STARTTLS" not in caps:
        _quit(r, b"z LOGOUT\r\n")
        raise NotOffered("imap", "CAPABILITY lists no STARTTLS: " + " ".join(sorted(caps))[:170])
    r.send(b"a2 STARTTLS\r\n")
    status, text, _ = _imap_tagged(r, b"a2")
    if status != "OK":
        _quit(r, b"z LOGOUT\r\n")
        raise NotOffered("imap", f"STARTTLS refused: {text}")


def _pop3(r: _Lines) -> None:
    greeting = r.line()
    if not greeting.startswith(b"+OK"):
        raise r._fail("protocol", "greeting is not +OK")
    r.send(b"STLS\r\n")
    ln = r.line()
    if ln.startswith(b"+OK"):
        return
    if ln.startswith(b"-ERR"):
        _quit(r, b"QUIT\r\n")
        raise NotOffered("pop3", f"STLS refused: {ln.decode('latin-1')[:180]}")
    raise r._fail("protocol", "answer to STLS is neither +OK nor -ERR")


# LDAPMessage {messageID 1, extendedReq [APPLICATION 23] {requestName [0] "1.3.6.1.4.1.1466.20037"}} (RFC 4511 4.14)
LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
LDAP_STARTTLS = (b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + LDAP_STARTTLS_OID)
LDAP_RESULTS = {0: "success", 1: "operationsError", 2: "protocolError", 52: "unavailable", 53: "unwillingToPerform"}


class BerError(ValueError):
    """A malformed LDAP answer."""


def _ber(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the BER element at `pos` (definite lengths up to 4 bytes)."""
    if pos + 2 > len(data):
        raise BerError("truncated element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if not 1 <= n <= 4 or pos + n > len(data):
            raise BerError(f"unsupported length form 0x{first:02x}")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise BerError("element longer than the message")
    return tag, pos, pos + length


def ldap_message_length(head: bytes) -> int:
    """Total length of an LDAPMessage from its first 6 bytes (SEQUENCE tag and length)."""
    if len(head) < 2 or head[0] != 0x30:
        raise BerError("not an LDAP message (no SEQUENCE)")
    first = head[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if not 1 <= n <= 4 or len(head) < 2 + n:
        raise BerError(f"unsupported length form 0x{first:02x}")
    return 2 + n + int.from_bytes(head[2:2 + n], "big")


def parse_ldap_extended_response(message: bytes) -> tuple[int, int, str]:
    """(messageID, resultCode, diagnosticMessage) of an LDAPMessage carrying an ExtendedResponse."""
    tag, start, end = _ber(message, 0)
    if tag != 0x30:
        raise BerError("not an LDAP message (no SEQUENCE)")
    tag, s1, e1 = _ber(message, start)
    if tag != 0x02 or not 1 <= e1 - s1 <= 4:
        raise BerError("no messageID")
    msgid = int.from_bytes(message[s1:e1], "big")
    tag, s2, e2 = _ber(message, e1)
    if tag != 0x78:
        raise BerError(f"not an ExtendedResponse (tag 0x{tag:02x})")
    tag, s3, e3 = _ber(message, s2)
    if tag != 0x0A or e3 - s3 != 1:
        raise BerError("no resultCode")
    code = message[s3]
    _tag, s4, e4 = _ber(message, e3)              # matchedDN
    tag, s5, e5 = _ber(message, e4)               # diagnosticMessage
    return msgid, code, message[s5:e5].decode("utf-8", "replace")[:160]


def _ldap(r: _Lines) -> None:
    r.send(LDAP_STARTTLS)
    try:
        head = r.exact(2)
        if head[1] >= 0x80 and 1 <= head[1] & 0x7F <= 4:
            head += r.exact(head[1] & 0x7F)       # long-form length
        total = ldap_message_length(head)
        if total > MAX_EXCHANGE_BYTES:
            raise BerError(f"answer of {total} bytes announced")
        msgid, code, text = parse_ldap_extended_response(head + r.exact(total - len(head)))
    except BerError as e:
        raise r._fail("protocol", f"bad answer to StartTLS: {e}") from None
    if msgid == 0:                 # unsolicited notice of disconnection
        raise r._fail("protocol", f"server disconnected: result {code} {text}".strip())
    if code != 0:
        raise NotOffered("ldap", f"StartTLS refused: {code} {LDAP_RESULTS.get(code, '')} {text}".strip()[:200])


def _rdp(r: _Lines) -> None:
    """X.224 Connection Request asking for TLS only; a Confirm selecting TLS is RDP's go-ahead for the
    ClientHello. A failure code or standard RDP security instead is "not offered"."""
    r.send(connection_request(PROTOCOL_SSL))
    try:
        header = r.exact(4)
        confirm = parse_connection_confirm(header + r.exact(tpkt_length(header) - 4))
    except X224Error as e:
        raise r._fail("protocol", e.detail) from None
    if confirm.negotiation == "response" and confirm.selected == PROTOCOL_SSL:
        return
    if confirm.negotiation == "failure":
        raise NotOffered("rdp", f"TLS refused: {confirm.failure}")
    if confirm.negotiation == "none":
        raise NotOffered("rdp", "no negotiation data: standard RDP security only")
    raise NotOffered("rdp", f"selected protocol {confirm.selected} instead of TLS")


_DIALOGUES = {"smtp": _smtp, "ftp": _ftp, "imap": _imap, "pop3": _pop3, "ldap": _ldap, "rdp": _rdp}


def negotiate(sock: socket.socket, protocol: str, deadline: float) -> None:
    """Bring `sock` to the point where the server expects a ClientHello. Raises NotOffered when the server
    answers without STARTTLS, CheckError("timeout"|"protocol") when it does not answer properly in time."""
    r = _Lines(sock, deadline, protocol)
    _DIALOGUES[protocol](r)
    r.done()
