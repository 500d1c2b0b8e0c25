"""ports.open: confirm each discovered port answers and read what a server says first (banner).

Facts only: which port, which service, the banner. Whether a port is risky or cleartext management is the
baseline's call (rules hardening.risky-port, crypto.cleartext.*, network.mgmt-interface-exposed).
"""

from __future__ import annotations

from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="ports.open",
    version="1.0",
    title_zh="开放端口与服务标识",
    title_en="Open ports and service banners",
    granularity="service",
    proto="any",
    timeout=15.0,
    description="TCP connect to every TCP port discovery found open and reads up to 512 bytes the server sends "
                "first; UDP services are reported as discovery saw them (no further packet).",
)
BANNER_WAIT = 1.5      # seconds to wait for a server-first banner (ssh, ftp, smtp, telnet negotiation)
BANNER_MAX = 512


def printable(raw: bytes) -> str:
    """Untrusted bytes from the network as a short printable string (telnet IAC bytes shown as escapes)."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() or c in "\r\n\t" else f"\\x{ord(c):02x}" for c in text).strip()


def run(ctx: CheckContext) -> list[Observation]:
    svc = ctx.service
    assert svc is not None
    if svc.proto == "udp":
        return [ctx.observation("service", {
            "port": svc.port, "proto": "udp", "name": svc.name, "product": svc.product, "version": svc.version,
            "tunnel": "", "banner": "", "reachable": True})]
    sock = ctx.connect(timeout=5)
    banner = b""
    try:
        sock.settimeout(min(BANNER_WAIT, ctx.remaining()))
        try:
            banner = sock.recv(BANNER_MAX)
        except TimeoutError:
            banner = b""
        except OSError as e:
            # reset straight after accept is an answer too (tcpwrapped): the port is reachable
            if not isinstance(e, ConnectionResetError):
                raise CheckError("connectivity", str(e)) from None
    finally:
        sock.close()
    return [ctx.observation("service", {
        "port": svc.port, "proto": svc.proto, "name": svc.name, "product": svc.product, "version": svc.version,
        "tunnel": svc.tunnel, "banner": printable(banner)[:BANNER_MAX], "reachable": True})]
