"""rdp.security: which security protocols an RDP server accepts — standard RDP security (RC4), TLS, CredSSP (NLA) —
read from the first exchange only: one X.224 Connection Request per protocol set (MS-RDPBCGR 2.2.1.1), the
server's Connection Confirm (2.2.1.2), and hang up. No TLS handshake, no credentials, no MCS.

The five requests are nmap rdp-enum-encryption's (RDP 0, TLS 1, CredSSP 3, RDSTLS 4, CredSSP-EX 8), so the facts
compare one for one. Facts only; crypto.rdp-standard-security and hardening.rdp-nla-not-required judge.
Observation key `negotiation`:
    offers: [{requested, requested_names, negotiation (response|failure|none), selected, failure}]
    standard_rdp_security  -- a client offering only standard RDP security is accepted
    tls                    -- a client offering only TLS gets TLS
    credssp                -- a client offering TLS+CredSSP gets CredSSP
    nla_required           -- clients without CredSSP (RDP only, TLS only) are both refused
    negotiation_supported  -- False: a pre-RDP 5.2 server that sends no negotiation data (RDP security only)
"""

from __future__ import annotations

from checks.rdp._x224 import (
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
from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation
from scanner.sdk.bounded import BoundedSocket, BudgetExceeded

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
                "and reads the server's Connection Confirm. No TLS, no login.",
)
REQUESTS = (PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_SSL | PROTOCOL_HYBRID, 0x04, 0x08)
EXCHANGE_BUDGET = 6.0      # seconds for one request and its confirm
MAX_BYTES = 1024


def _exchange(ctx: CheckContext, protocols: int) -> Confirm:
    sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
    sock.settimeout(None)    # the BoundedSocket's deadline governs the reads
    bounded = BoundedSocket(sock, seconds=min(EXCHANGE_BUDGET, ctx.remaining()), max_bytes=MAX_BYTES,
                            what="RDP connection confirm")

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
        return parse_connection_confirm(header + read(tpkt_length(header) - 4))
    except BudgetExceeded as e:
        raise CheckError(e.reason, e.detail) from None
    except ConnectionResetError:
        raise CheckError("protocol", f"connection reset by the server (request {protocols:#x})") from None
    except OSError as e:
        raise CheckError("connectivity", f"RDP request {protocols:#x}: {e.strerror or e}") from None
    finally:
        sock.close()


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
            confirm = _exchange(ctx, protocols)
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
    return [ctx.observation("negotiation", {
        "offers": offers,
        "standard_rdp_security": rdp_only,
        "tls": tls_only,
        "credssp": by_request[PROTOCOL_SSL | PROTOCOL_HYBRID]["selected"] == "CredSSP",
        "nla_required": not rdp_only and not tls_only,
        "negotiation_supported": any(o["negotiation"] != "none" for o in offers),
    })]
