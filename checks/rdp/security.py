"""rdp.security: which security protocols an RDP server accepts — standard RDP security (RC4), TLS, CredSSP (NLA) —
read from the first exchange only: one X.224 Connection Request per protocol set (MS-RDPBCGR 2.2.1.1), the
server's Connection Confirm (2.2.1.2), and hang up. No TLS handshake, no credentials. Where standard RDP security
is accepted, one MCS Connect Initial per RC4/FIPS method reads its encryption (2.2.1.3/2.2.1.4), as nmap does.

The five requests are nmap rdp-enum-encryption's (RDP 0, TLS 1, CredSSP 3, RDSTLS 4, CredSSP-EX 8), so the facts
compare one for one. Facts only; crypto.rdp-standard-security and hardening.rdp-nla-not-required judge.
Observation key `negotiation`:
    offers: [{requested, requested_names, negotiation (response|failure|none), selected, failure}]
    standard_rdp_security  -- a client offering only standard RDP security is accepted
    tls                    -- a client offering only TLS gets TLS
    credssp                -- a client offering TLS+CredSSP gets CredSSP
    nla_required           -- clients without CredSSP (RDP only, TLS only) are both refused
    negotiation_supported  -- False: a pre-RDP 5.2 server that sends no negotiation data (RDP security only)
    encryption_methods     -- standard RDP security only: the methods (40/56/128-bit RC4, FIPS) the server took
                              when offered alone (one MCS Connect Initial each, checks/rdp/_mcs.py)
    encryption_level       -- the level its Server Security Data names (None, Low, Client Compatible, High, FIPS)
    encryption_error       -- why the encryption could not be read ("" when it was)
"""

from __future__ import annotations

import struct

from checks.rdp._mcs import LEVELS, MAX_RESPONSE, METHODS, connect_initial, parse_connect_response
from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation
from scanner.sdk.bounded import BoundedSocket, BudgetExceeded
from scanner.sdk.x224 import (
    PROTOCOL_HYBRID,
    PROTOCOL_NAMES,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    Confirm,
    X224Error,
    connection_request,
    names,
    parse_connection_confirm,
    tpkt_length,
)

META = CheckMeta(
    id="rdp.security",
    version="1.0",
    title_zh="RDP安全协议协商（标准RDP安全/TLS/NLA）",
    title_en="RDP security protocols accepted (standard RDP security, TLS, NLA)",
    granularity="service",
    services=("ms-wbt-server", "rdp"),
    ports=(3389,),
    capabilities=("AUTH", "TXCF"),
    timeout=40.0,
    description="Sends one X.224 Connection Request per protocol set (RDP, TLS, CredSSP, RDSTLS, CredSSP-EX) "
                "and reads the server's Connection Confirm; where standard RDP security is accepted, one MCS "
                "Connect Initial per encryption method. No TLS, no login.",
)
REQUESTS = (PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_SSL | PROTOCOL_HYBRID, 0x04, 0x08)
EXCHANGE_BUDGET = 6.0      # seconds for one request and its confirm
MAX_BYTES = 1024


def _exchange(ctx: CheckContext, protocols: int, method: int | None = None) -> tuple[Confirm, tuple[int, int] | None]:
    """One connection: our Connection Request and the server's Confirm; with `method`, then an MCS Connect
    Initial offering that encryption method and the (method, level) of the server's Connect Response."""
    sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
    sock.settimeout(None)    # the BoundedSocket's deadline governs the reads
    bounded = BoundedSocket(sock, seconds=min(EXCHANGE_BUDGET, ctx.remaining()),
                            max_bytes=MAX_BYTES if method is None else MAX_RESPONSE + MAX_BYTES,
                            what="RDP connection confirm" if method is None else "RDP MCS connect response")

    def read(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = bounded.recv(n - len(buf))
            if not chunk:
                raise X224Error(f"connection closed by the server after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    try:
        sock.sendall(connection_request(protocols))
        header = read(4)
        confirm = parse_connection_confirm(header + read(tpkt_length(header) - 4))
        if method is None:
            return confirm, None
        sock.sendall(connect_initial(method))
        header = read(4)
        (length,) = struct.unpack(">H", header[2:4])
        if header[0] != 3 or not 8 <= length <= MAX_RESPONSE:
            raise X224Error(f"TPKT header {header.hex()} is not an MCS Connect Response's")
        return confirm, parse_connect_response(header + read(length - 4))
    except BudgetExceeded as e:
        raise CheckError(e.reason, e.detail) from None
    except ConnectionResetError:
        raise CheckError("protocol", f"connection reset by the server (request {protocols:#x})") from None
    except OSError as e:
        raise CheckError("connectivity", f"RDP request {protocols:#x}: {e.strerror or e}") from None
    finally:
        sock.close()


def _encryption(ctx: CheckContext) -> dict:
    """Standard RDP security's encryption: one connection per method (nmap's four), the server's choice and
    level. A failure here leaves the negotiation facts standing and is said in `encryption_error`."""
    accepted, levels, error = [], set(), ""
    for method in METHODS:
        try:
            _confirm, chosen = _exchange(ctx, PROTOCOL_RDP, method)
        except (CheckError, X224Error) as e:
            error = f"{METHODS[method]}: {e.detail}"[:200]
            break
        assert chosen is not None
        if chosen[0] == method:
            accepted.append(METHODS[method])
        levels.add(LEVELS.get(chosen[1], f"unknown ({chosen[1]})"))
    return {"encryption_methods": accepted, "encryption_level": sorted(levels)[0] if len(levels) == 1 else
            ", ".join(sorted(levels)), "encryption_error": error}


def _offer(protocols: int, c: Confirm) -> dict:
    selected = None
    if c.negotiation == "response":
        selected = PROTOCOL_NAMES.get(c.selected, f"unknown ({c.selected})") if c.selected is not None else None
    elif c.negotiation == "none":
        selected = "RDP"           # no negotiation data: the server speaks standard RDP security only
    return {"requested": protocols, "requested_names": names(protocols) or ["RDP"], "negotiation": c.negotiation,
            "selected": selected, "failure": c.failure}


def run(ctx: CheckContext) -> list[Observation]:
    offers = []
    for i, protocols in enumerate(REQUESTS):
        try:
            confirm, _ = _exchange(ctx, protocols)
        except X224Error as e:
            if i == 0:
                raise CheckNotApplicable(f"not an RDP server: {e.detail}") from None
            raise CheckError(e.reason, f"request {protocols:#x}: {e.detail}") from None
        except CheckError as e:
            if i == 0 and e.reason == "timeout":
                ctx.note_silence("RDP server did not confirm the connection request")
            raise
        offers.append(_offer(protocols, confirm))
    by_request = {o["requested"]: o for o in offers}
    rdp_only = by_request[PROTOCOL_RDP]["selected"] == "RDP"
    tls_only = by_request[PROTOCOL_SSL]["selected"] == "TLS"
    encryption = ({"encryption_methods": [], "encryption_level": "", "encryption_error": ""} if not rdp_only
                  else _encryption(ctx))
    return [ctx.observation("negotiation", {
        "offers": offers,
        "standard_rdp_security": rdp_only,
        "tls": tls_only,
        "credssp": by_request[PROTOCOL_SSL | PROTOCOL_HYBRID]["selected"] == "CredSSP",
        "nla_required": not rdp_only and not tls_only,
        "negotiation_supported": any(o["negotiation"] != "none" for o in offers),
        **encryption,
    })]
