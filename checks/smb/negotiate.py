"""smb.negotiate: which SMB dialects a server accepts, whether it requires message signing, and its clock.

One connection per dialect (NT LM 0.12, then SMB 2.0.2 to 3.1.1), each offering that dialect alone and closed
after the answer, as nmap's smb-protocols does; no session, no login. Facts only; the rules
hardening.smb.smb1-enabled, crypto.smb.signing-not-required and audit.clock-skew judge.
Observation key `negotiate` (docs/checks/smb.md):
    dialects: ["NT LM 0.12", "2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]   -- the accepted ones, in that order
    smb1: bool                        -- NT LM 0.12 accepted
    signing_required: bool | null     -- SMB2+ at the highest accepted dialect (null: no SMB2 dialect)
    signing_enabled: bool | null
    smb1_signing_required: bool | null  -- SMB1's own security mode (null: SMB1 refused)
    server_time: ISO-8601 UTC | null, clock_skew_seconds: int | null (server minus ours; + = server ahead)
    refused: {dialect: why}           -- how each other dialect was refused (status, closed, reset)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from checks.smb._wire import (
    SMB1_DIALECT,
    SMB2_DIALECTS,
    NegotiateAnswer,
    WireError,
    frame,
    parse_negotiate,
    read_message,
    smb1_negotiate,
    smb2_negotiate,
)
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="smb.negotiate",
    version="1.0",
    title_zh="SMB协议版本、签名要求与服务器时钟",
    title_en="SMB dialects, signing requirement and server clock",
    granularity="service",
    services=("microsoft-ds",),
    ports=(445,),
    timeout=40.0,
    description="One SMB NEGOTIATE per dialect (NT LM 0.12, 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1) on its own connection; "
                "records the accepted dialects, the signing mode and the server's clock. No session setup.",
)
EXCHANGE_BUDGET = 6.0    # seconds for one connect + negotiate (a LAN server answers in milliseconds)


def _ask(ctx: CheckContext, request: bytes, offered: str) -> tuple[NegotiateAnswer | None, str, float]:
    """One negotiate on a fresh connection: (answer, why refused, our clock when the answer came)."""
    sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
    deadline = time.monotonic() + min(EXCHANGE_BUDGET, ctx.remaining())
    try:
        sent = time.monotonic()
        sock.sendall(frame(request))
        try:
            message = read_message(sock, deadline)
        except ConnectionResetError:
            return None, "connection reset", time.time()
        ctx.note_response(time.monotonic() - sent, "smb")
        now = time.time()
        return parse_negotiate(message, offered), "", now
    except WireError as e:
        if e.detail.startswith("connection closed by the server") and "mid-message" not in e.detail:
            return None, "connection closed", time.time()   # how Windows refuses SMB1 when it is off
        if e.reason == "timeout":
            ctx.note_silence(e.detail)
        raise
    except OSError as e:
        raise WireError("protocol", f"{offered}: {e.strerror or e}") from None
    finally:
        try:
            sock.close()
        except OSError:
            pass


def run(ctx: CheckContext) -> list[Observation]:
    offers = [(SMB1_DIALECT, smb1_negotiate())] + [(name, smb2_negotiate(code)) for name, code in SMB2_DIALECTS.items()]
    accepted: dict[str, tuple[NegotiateAnswer, float]] = {}
    refused: dict[str, str] = {}
    errors: list[str] = []
    for name, request in offers:
        try:
            answer, why, at = _ask(ctx, request, name)
        except WireError as e:
            if e.reason == "timeout" and not accepted and not refused:
                raise CheckError("timeout", e.detail) from None
            errors.append(f"{name}: {e.detail}")
            if len(errors) >= 2 and not accepted:   # garbage twice: not an SMB server we can read
                raise CheckError("protocol", "; ".join(errors)[:300]) from None
            continue
        if answer is None:
            refused[name] = why
        elif answer.accepted:
            accepted[name] = (answer, at)
        else:
            refused[name] = (f"status 0x{answer.status:08x}" if answer.status
                             else f"answered {answer.dialect}" if answer.dialect else "refused")
    if not accepted:
        detail = "; ".join(errors) or "every dialect refused: " + ", ".join(f"{k} ({v})" for k, v in refused.items())
        raise CheckError("protocol", detail[:300])
    if errors:
        # an answer we could not read for some dialect: reporting it "refused" would be a guess
        raise CheckError("protocol", "; ".join(errors)[:300])

    smb2 = [n for n in SMB2_DIALECTS if n in accepted]
    top = accepted[smb2[-1]][0] if smb2 else None
    one = accepted.get(SMB1_DIALECT, (None, 0.0))[0]
    clock_from, at = accepted[smb2[-1]] if smb2 else accepted[SMB1_DIALECT]
    server_time = clock_from.server_time
    data = {
        "dialects": [n for n in (SMB1_DIALECT, *SMB2_DIALECTS) if n in accepted],
        "smb1": one is not None,
        "signing_enabled": top.signing_enabled if top else None,
        "signing_required": top.signing_required if top else None,
        "smb1_signing_required": one.signing_required if one else None,
        "server_time": server_time.isoformat().replace("+00:00", "Z") if server_time else None,
        "clock_skew_seconds": round((server_time - datetime.fromtimestamp(at, UTC)).total_seconds())
        if server_time else None,
        "refused": refused,
    }
    return [ctx.observation("negotiate", data)]

