"""hl7.mllp: does an HL7 v2 listener take an unauthenticated message, and is it plaintext?

One connection, one harmless message (scanner.sdk.probes.harmless_message: a bare ACK, processing id T,
accept-ack only; why it is harmless: docs/checks/medical.md), one answer frame read (64 KiB and 10 s at
most). When the plaintext attempt is closed or answered with a TLS alert, one TLS attempt follows
(MLLP over TLS). Facts: answered or not, MSA code, the answering application/facility, HL7 version,
plaintext or TLS. Judged by medical.hl7.* rules.
"""

from __future__ import annotations

import secrets
import ssl
import time

from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation
from scanner.sdk.probes import ProbeError, harmless_message, mllp_frame, parse_hl7, read_mllp_frame

META = CheckMeta(
    id="hl7.mllp",
    version="1.0",
    title_zh="HL7 v2 MLLP接口鉴别与传输加密",
    title_en="HL7 v2 MLLP listener authentication and transport encryption",
    granularity="service",
    services=("hl7-mllp", "hl7"),
    ports=(2575,),
    capabilities=("NAUT", "AUTH", "TXCF", "TXIG"),
    timeout=30.0,
    description="Sends one harmless HL7 message (ACK, processing id T) over MLLP and reads one answer.",
)
ANSWER_WAIT = 10.0


def _exchange(ctx: CheckContext, tls: bool) -> tuple[bytes, float]:
    sock = ctx.connect(timeout=min(10.0, ctx.remaining()))
    try:
        if tls:
            tctx = ssl.create_default_context()
            tctx.check_hostname = False
            tctx.verify_mode = ssl.CERT_NONE     # we ask "is it TLS", not "is the certificate good" (tls.*)
            sock.settimeout(min(10.0, ctx.remaining()))
            try:
                sock = ctx.wrap_tls(sock, tctx)
            except (ssl.SSLError, OSError) as e:
                raise ProbeError("protocol", f"no TLS either: {e}") from None
        control = "TCMSCAN" + secrets.token_hex(5).upper()
        start = time.monotonic()
        sock.sendall(mllp_frame(harmless_message(control)))
        answer = read_mllp_frame(sock, min(time.monotonic() + ANSWER_WAIT, ctx.deadline))
        return answer, time.monotonic() - start
    finally:
        sock.close()


def _looks_like_tls_refusal(e: ProbeError) -> bool:
    return e.reason == "connectivity" or "closed" in e.detail or "start block" in e.detail


def run(ctx: CheckContext) -> list[Observation]:
    tls = False
    try:
        answer, rtt = _exchange(ctx, tls=False)
    except ProbeError as e:
        if e.reason == "timeout" and e.detail.startswith("no answer"):
            # Connected, sent, silence: a listener that does not acknowledge us (or is not MLLP).
            ctx.note_silence("MLLP listener did not answer")
            return [ctx.observation("mllp", {"tls": False, "connected": True, "answered": False,
                                             "msa_code": "", "reason": e.detail})]
        if not _looks_like_tls_refusal(e):
            raise CheckError(e.reason, e.detail) from None
        try:
            answer, rtt = _exchange(ctx, tls=True)
            tls = True
        except ProbeError as e2:
            raise CheckError(e2.reason, f"plaintext: {e.detail}; TLS: {e2.detail}") from None
    ctx.note_response(rtt, "hl7")
    try:
        a = parse_hl7(answer)
    except ProbeError as e:
        raise CheckNotApplicable(f"answered with an MLLP frame that is not HL7 v2: {e.detail}") from None
    return [ctx.observation("mllp", {
        "tls": tls, "connected": True, "answered": True,
        "sent": {"message_type": "ACK", "processing_id": "T", "version": "2.5", "accept_ack": "AL",
                 "application_ack": "NE"},
        "message_type": a.message_type, "msa_code": a.msa_code,
        "sending_application": a.sending_application, "sending_facility": a.sending_facility,
        "version": a.version, "processing_id": a.processing_id,
        "response_ms": round(rtt * 1000, 1),
    })]
