"""vnc.security: an RFB (VNC) server's protocol version and the security types it offers, read from the opening of
the session (RFC 6143 7.1). No password is sent: the connection is closed once the types (and, when VeNCrypt is
offered, its sub-types) are read — what nmap's vnc-info reads.

Facts only; hardening.vnc-no-auth and crypto.vnc-weak-auth judge (baselines/knowledge/vnc_security_types.yaml names
the numbers). Observation key `security`:
    banner ("RFB 003.008"), version ("3.8"), client_version (what we answered), server_chose (RFB 3.3),
    types [int], type_names [str], refused (the server's reason when it offered none),
    vencrypt_subtypes [int], vencrypt_names [str], vencrypt_error
"""

from __future__ import annotations

from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation
from scanner.sdk.bounded import BoundedSocket, BudgetExceeded
from scanner.sdk.rfb import RfbError, handshake

META = CheckMeta(
    id="vnc.security",
    version="1.0",
    title_zh="VNC协议版本与认证方式",
    title_en="VNC protocol version and security types",
    granularity="service",
    services=("vnc", "vnc-1", "vnc-2", "vnc-3"),
    ports=(5900, 5901, 5902, 5903),
    capabilities=("AUTH", "NAUT"),
    timeout=20.0,
    description="Reads the RFB ProtocolVersion and the security types (and VeNCrypt sub-types) a VNC server "
                "offers, then hangs up. No authentication.",
)
HANDSHAKE_BUDGET = 8.0     # seconds for the whole opening; a LAN server answers in milliseconds
MAX_BYTES = 4096           # 12 + 1 + 255 + a capped reason + VeNCrypt's 4 + 4*255 is below this


def _names(numbers: list[int], table: dict, fallback: dict | None = None) -> list[str]:
    # VeNCrypt lists plain RFB types too (TigerVNC offers 1 None and 2 VncAuth inside it, without TLS)
    return [(table.get(n) or (fallback or {}).get(n) or {}).get("name", f"unknown ({n})") for n in numbers]


def run(ctx: CheckContext) -> list[Observation]:
    sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
    sock.settimeout(None)    # the BoundedSocket's one deadline governs every read, not a per-call timeout
    bounded = BoundedSocket(sock, seconds=min(HANDSHAKE_BUDGET, ctx.remaining()), max_bytes=MAX_BYTES,
                            what="VNC opening")
    received = 0

    def read(n: int) -> bytes:
        nonlocal received
        buf = b""
        while len(buf) < n:
            chunk = bounded.recv(n - len(buf))
            if not chunk:
                raise RfbError("protocol", f"connection closed by the server after {received + len(buf)} bytes")
            buf += chunk
        received += n
        return buf

    try:
        hello = handshake(read, sock.sendall)
    except RfbError as e:
        if received == 12 and e.detail.startswith("not an RFB"):   # the first 12 bytes are not RFB
            raise CheckNotApplicable(e.detail) from None
        raise CheckError(e.reason, e.detail) from None
    except BudgetExceeded as e:
        if e.reason == "timeout" and received == 0:
            ctx.note_silence("VNC server sent no ProtocolVersion")
        raise CheckError(e.reason, e.detail) from None
    except ConnectionResetError:
        raise CheckError("protocol", f"connection reset by the server after {received} bytes") from None
    except OSError as e:
        raise CheckError("connectivity", f"VNC opening: {e.strerror or e}") from None
    finally:
        sock.close()
    if hello.refused and not hello.types:
        # no security type offered, only a reason (TigerVNC's blacklist: "Too many security failures"): nothing
        # about the server's security is known, so it is not assessed -- not "no None offered"
        raise CheckError("auth", f"the server offered no security type: {hello.refused}")
    table = ctx.knowledge["vnc_security_types"]
    return [ctx.observation("security", {
        "banner": hello.banner, "version": hello.version, "client_version": hello.client_version,
        "server_chose": hello.server_chose,
        "types": hello.types, "type_names": _names(hello.types, table["types"]), "refused": hello.refused,
        "vencrypt_subtypes": hello.vencrypt_subtypes,
        "vencrypt_names": _names(hello.vencrypt_subtypes, table["vencrypt_subtypes"], table["types"]),
        "vencrypt_error": hello.vencrypt_error,
    })]
