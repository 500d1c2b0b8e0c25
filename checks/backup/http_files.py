"""backup.http-files: are backup files (db dumps, archives) served over HTTP(S)? HEAD requests only.

Paths come from baselines/knowledge/backup_http_paths.yaml (at most `max_requests` per port). A server that
answers 200 for any path (a catch-all page) is recognised with one HEAD for a random path first: a
backup path answering exactly like it is not counted. No body is ever requested. Not run on fragile
assets (intrusive=True puts it under safe mode). Raw HTTP/1.1 over ctx.connect so every request goes
through the scope and pacing guard (http.client would open its own sockets).
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time

from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation
from scanner.sdk.http_wire import recv_until

META = CheckMeta(
    id="backup.http-files",
    version="1.0",
    title_zh="Web服务暴露的备份文件",
    title_en="Backup files served over HTTP",
    granularity="service",
    services=("http", "https", "http-alt", "https-alt", "http-proxy"),
    ports=(80, 443, 8080, 8443),
    tls=True,
    intrusive=True,
    timeout=60.0,
    description="HEAD requests for common backup file names; records status, type and length only.",
)
MAX_HEAD = 16 * 1024
REQUEST_BUDGET = 8.0      # seconds for one HEAD and its answer, whatever the peer's pace
HTML = ("text/html", "text/plain")


def parse_head(raw: bytes) -> dict | None:
    """Status and a few headers of an HTTP response head (pure: tested with hypothesis)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1", "replace")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2) if lines else []
    # isdecimal, not isdigit: "\u00b2" (a latin-1 byte) is a digit int() refuses
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdecimal():
        return None
    h: dict[str, str] = {}
    for line in lines[1:200]:
        k, sep, v = line.partition(":")
        if sep:
            h[k.strip().lower()] = v.strip()[:200]
    length = h.get("content-length", "")
    return {"status": int(parts[1][:3]), "type": h.get("content-type", "").split(";")[0].strip().lower()[:80],
            "length": int(length) if length.isdecimal() and len(length) < 16 else None}


def _tls(ctx: CheckContext) -> bool:
    s = ctx.service
    return bool(s and (s.tunnel == "ssl" or s.name in ("https", "https-alt") or (s.port in (443, 8443)
                                                                                  and s.name == "")))


class HeadSession:
    """HEAD requests to one port over one kept-alive connection (HTTP/1.1, RFC 9112 9.3): a TLS handshake per
    port instead of per path. A new connection where the server closes, answers with more than a head, or says
    `Connection: close`; a kept connection the server dropped in between is opened again once."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _open(self, deadline: float) -> bool:
        ctx = self.ctx
        sock: socket.socket = ctx.connect(timeout=5)
        if _tls(ctx):
            tctx = ssl.create_default_context()
            tctx.check_hostname, tctx.verify_mode = False, ssl.CERT_NONE  # we look for files, not judge certs
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                sock = ctx.wrap_tls(sock, tctx)
            except TimeoutError:
                sock.close()
                raise CheckError("timeout", f"{ctx.address}:{ctx.port}: TLS handshake not done within "
                                            f"{REQUEST_BUDGET:.0f} s") from None
            except (ssl.SSLError, OSError):
                sock.close()
                return False
        self.sock = sock
        return True

    def head(self, path: str) -> dict | None:
        """One HEAD request's status, type and length; None when the answer is no HTTP response head. Bounded:
        the head must be complete within REQUEST_BUDGET s (CheckError timeout) and MAX_HEAD bytes (protocol)."""
        ctx = self.ctx
        deadline = time.monotonic() + min(REQUEST_BUDGET, ctx.remaining())
        for fresh in (self.sock is None or _unclean(self.sock), True):
            if fresh and (self.close() or not self._open(deadline)):
                return None
            assert self.sock is not None
            raw = bytearray()
            try:
                self.sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: {ctx.address}\r\nUser-Agent: tcmscan\r\n\r\n"
                                  .encode())
                finished = recv_until(self.sock, deadline, raw, lambda b, reused=not fresh: b"\r\n\r\n" in b or len(b) > MAX_HEAD or (
                    reused and len(b) >= 5 and not b.startswith(b"HTTP/")))
            except OSError:
                raw, finished = bytearray(), True
            if fresh or raw.startswith(b"HTTP/"):
                break
            # a kept connection that gave no new answer (closed in between, or still sending a body the last
            # answer should not have had): ask again on a new one
        head_end = raw.find(b"\r\n\r\n")
        if head_end < 0:
            self.close()
            if len(raw) > MAX_HEAD:
                raise CheckError("protocol", f"{ctx.address}:{ctx.port} answered HEAD with a head over {MAX_HEAD} bytes")
            if not finished:
                raise CheckError("timeout", f"{ctx.address}:{ctx.port} did not finish its answer to HEAD within "
                                            f"{REQUEST_BUDGET:.0f} s")
            return parse_head(bytes(raw))
        if len(raw) > head_end + 4 or _closes(bytes(raw[:head_end])):
            self.close()
        return parse_head(bytes(raw))


def _unclean(sock: socket.socket) -> bool:
    """Did the server send anything (or close) since its last answer? A HEAD answer has no body: then the
    connection carries something else and is not reused."""
    import select  # noqa: PLC0415

    pending = getattr(sock, "pending", lambda: 0)()        # TLS: bytes already decrypted
    return bool(pending or select.select([sock], [], [], 0)[0])


def _closes(head: bytes) -> bool:
    """Does the server end the connection after this answer (HTTP/1.0 without keep-alive, `Connection: close`)?"""
    lines = head.decode("latin-1", "replace").lower().split("\r\n")
    connection = next((ln.partition(":")[2].strip() for ln in lines[1:] if ln.startswith("connection:")), "")
    return "close" in connection or (lines[0].startswith("http/1.0") and "keep-alive" not in connection)


def exposed(resp: dict | None, baseline: dict | None) -> bool:
    if not resp or resp["status"] != 200 or resp["length"] == 0:
        return False
    if baseline and baseline["status"] == 200 and baseline["type"] == resp["type"]:
        return False       # the server answers 200 for anything: a catch-all page, not a file
    return not resp["type"].startswith(HTML)


def run(ctx: CheckContext) -> list[Observation]:
    table = ctx.knowledge["backup_http_paths"]
    paths = list(table["paths"])[: int(table.get("max_requests", 20)) - 1]
    session = HeadSession(ctx)
    try:
        baseline = session.head(f"/tcmscan-{secrets.token_hex(6)}.sql")
        if baseline is None:
            raise CheckError("protocol", f"{ctx.address}:{ctx.port} gave no HTTP answer to HEAD")
        found = []
        for p in paths:
            r = session.head(p)
            if exposed(r, baseline):
                found.append({"path": p, "status": r["status"], "type": r["type"], "length": r["length"]})  # type: ignore[index]
    finally:
        session.close()
    return [ctx.observation("http-backup-files", {"tried": len(paths) + 1, "exposed": found,
                                                   "catch_all": baseline["status"] == 200})]
