"""One bounded HTTP/1.1 GET on a context socket, for the PHI API checks: the response head (32 KiB) and at most
MAX_BODY bytes of body within one deadline, whatever the server announces or trickles. Parsing reuses
scanner.sdk.http_wire; the JSON body is decoded here, and a body cut at the cap is reported as such, never
guessed at."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from scanner.sdk import CheckContext
from scanner.sdk.http_wire import Head, dechunk, decoded, open_http_socket, read_response_head, recv_until

MAX_BODY = 256 * 1024
REQUEST_SECONDS = 8.0


@dataclass
class Response:
    head: Head
    body: bytes
    truncated: bool

    @property
    def status(self) -> int:
        return self.head.status

    def json(self) -> Any:
        """The body as JSON, or None (not JSON, or cut at MAX_BODY)."""
        if self.truncated:
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None


def get(ctx: CheckContext, path: str, *, tls: bool = False, accept: str = "application/json") -> Response:
    deadline = time.monotonic() + min(REQUEST_SECONDS, ctx.remaining())
    sock = open_http_socket(ctx, ctx.port or 80, tls, deadline, REQUEST_SECONDS)
    try:
        host = f"[{ctx.address}]" if ":" in ctx.address else ctx.address
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{ctx.port}\r\nUser-Agent: tcmscan\r\n"
                     f"Accept: {accept}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n".encode())
        head, body = read_response_head(sock, deadline, f"no HTTP answer to GET {path[:60]} within "
                                                        f"{REQUEST_SECONDS:.0f} s", lambda: ctx.note_silence("http"))
        length = head.get("content-length")
        chunked = "chunked" in (head.get("transfer-encoding") or "").lower()
        want = int(length) if length and length.strip().isdigit() and not chunked else None

        def done(b: bytearray) -> bool:
            return len(b) > MAX_BODY or (want is not None and len(b) >= want) or (chunked and b.endswith(b"0\r\n\r\n"))

        recv_until(sock, deadline, body, done)
        truncated = len(body) > MAX_BODY or (want is not None and len(body) < want)
        raw = bytes(body[:MAX_BODY])
        if chunked:
            raw = dechunk(raw)
        return Response(head, decoded(raw, head.get("content-encoding"))[:MAX_BODY], truncated)
    finally:
        sock.close()
