"""Real receivers on 127.0.0.1 for notification tests: an HTTP webhook receiver (http.server), an SMTP server
with STARTTLS (aiosmtpd), a UDP syslog receiver, and a peer that accepts and never answers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.loopback import Scripted

LOOP = "127.0.0.1"


def wait_until(pred: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


class WebhookReceiver:
    """Records every POST (path, headers, JSON body); answers `status`."""

    def __init__(self, status: int = 204) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                       "json": json.loads(raw)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOP, 0), H)
        self.port = self.server.server_address[1]
        self.url = f"http://{LOOP}:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HangingServer(Scripted):
    """Accepts TCP connections and never sends a byte (a webhook or SMTP peer that hangs): each connection is
    held open, never read from, never answered, until close()."""

    def __init__(self) -> None:
        super().__init__(lambda _conn, _n, _first: self.stop.wait(), LOOP, backlog=16)


class SyslogReceiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOP, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self._stop = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def make_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a leaf for 127.0.0.1 (the SMTP server's STARTTLS certificate): (ca.pem, leaf.pem, leaf.key)."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("tcmscan schedule test CA")).issuer_name(
          name("tcmscan schedule test CA")).public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("smtp.test")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOP))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "smtp.pem", tmp / "smtp.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class SmtpServer:
    """aiosmtpd on 127.0.0.1 that requires STARTTLS before MAIL and, optionally, a login."""

    def __init__(self, tmp: Path, *, starttls: bool = True, login: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.ca, cert, key = make_cert(tmp)
        self.messages: list[dict[str, Any]] = []
        self.logins: list[tuple[str, str]] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                outer.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "tls": session.ssl is not None,
                                       "msg": message_from_bytes(envelope.original_content or envelope.content,
                                                                 policy=policy.default)})
                return "250 OK"

        def auth(_server: Any, _session: Any, _env: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and login is not None and \
                (data.login.decode(), data.password.decode()) == login
            if ok:
                outer.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=ok)

        ctx = None
        if starttls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
        kw: dict[str, Any] = {"tls_context": ctx, "require_starttls": starttls}
        if login:
            kw.update(authenticator=auth, auth_required=True, auth_require_tls=True)
        self.port = _free_port()
        self.controller = Controller(Handler(), hostname=LOOP, port=self.port, server_hostname="smtp.test", **kw)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()

    @staticmethod
    def text(msg: EmailMessage) -> str:
        return msg.get_body(preferencelist=("plain",)).get_content()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


def stop_listener(listener: Any) -> None:
    """Really stop a tests.loopback.Listener: close() alone leaves a thread blocked in accept() holding the
    socket open (Linux), so the port keeps answering SYNs until one more client comes."""
    listener._stop = True
    try:
        listener.sock.shutdown(socket.SHUT_RDWR)    # wakes the blocked accept()
    except OSError:
        pass
    listener.sock.close()
