"""ipmi.rmcp: what a BMC's IPMI LAN interface (UDP 623) grants before anyone logs in: authentication types,
null/anonymous logins, IPMI 1.5/2.0, and whether it opens an RMCP+ session with cipher suite 0 (no
authentication at all). Two kinds of datagram, no login, no command beyond these (checks/ipmi/_rmcp.py).

The cipher-0 probe opens a session on the BMC that is never activated (it ends by the BMC's own timeout, as any
client's unfinished login): not sent in safe mode. Facts only; hardening.ipmi-cipher-zero,
accounts.ipmi-anonymous-login and crypto.ipmi-weak-auth judge. Observation key `rmcp`:
    ipmi_versions, auth_types, anonymous_login, null_usernames, non_null_usernames, user_level_auth,
    per_message_auth, oem_id, cipher_zero (true | false | null when not asked), cipher_zero_status,
    rakp_tried, rakp_hash_users  -- user names (baselines/knowledge/ipmi_users.yaml) whose RAKP Message 2 carried
                                    the password's HMAC (CVE-2013-4786); its bytes are never kept. Not in safe mode.
"""

from __future__ import annotations

import secrets
import socket
import time

from checks.ipmi._rmcp import (
    CIPHER_THREE,
    PAYLOAD_OPEN_SESSION_RESPONSE,
    PAYLOAD_RAKP2,
    IpmiError,
    auth_capabilities_request,
    open_session_request,
    parse_auth_capabilities,
    parse_open_session,
    parse_open_session_response,
    parse_rakp2,
    rakp1,
    rakp3_abort,
)
from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation

META = CheckMeta(
    id="ipmi.rmcp",
    version="1.0",
    title_zh="IPMI（BMC）认证能力与cipher 0",
    title_en="IPMI (BMC) authentication capabilities and cipher suite 0",
    granularity="service",
    services=("asf-rmcp", "ipmi", "rmcp"),
    ports=(623,),
    proto="udp",
    timeout=20.0,
    description="Get Channel Authentication Capabilities, then one RMCP+ Open Session Request proposing cipher "
                "suite 0 (not in safe mode). No login.",
)
WAIT = 2.0          # seconds per datagram; a BMC on the LAN answers in milliseconds
TRIES = 2           # UDP: one resend, never more
MAX_DATAGRAM = 1024


class _Bmc:
    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET6 if ":" in ctx.address else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((ctx.address, ctx.port or 623))   # connected: ICMP unreachable reported, others filtered

    def ask(self, payload: bytes, want: int | None = None) -> bytes | None:
        """Send; the first RMCP IPMI answer (with `want`: the first RMCP+ answer of that payload type, so a
        late answer to an earlier message, e.g. the RAKP 4 to our abort, is skipped)."""
        for _ in range(TRIES):
            self.ctx.allow()
            deadline = time.monotonic() + min(WAIT, self.ctx.remaining())
            try:
                self.sock.send(payload)
                while (left := deadline - time.monotonic()) > 0:
                    self.sock.settimeout(left)
                    data = self.sock.recv(MAX_DATAGRAM)
                    if len(data) < 6 or data[0] != 0x06 or data[3] != 0x07:
                        continue             # not RMCP class IPMI (an ASF pong, noise)
                    if want is None or (data[4] == 0x06 and data[5] & 0x3F == want):
                        return data
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                raise CheckError("connectivity", f"{self.ctx.address}:623/udp port unreachable") from None
        return None

    def close(self) -> None:
        self.sock.close()


def _rakp(ctx: CheckContext, bmc: _Bmc) -> dict:
    """For each listed user name: Open Session (cipher suite 3), RAKP Message 1, and whether RAKP Message 2 came
    with a key exchange code (the password's HMAC); then an error RAKP Message 3 drops the half-open session."""
    tried, disclosed = [], []
    for user in list(ctx.knowledge["ipmi_users"]["users"]):
        sid = secrets.randbits(32) | 1
        reply = bmc.ask(open_session_request(sid, cipher=CIPHER_THREE), PAYLOAD_OPEN_SESSION_RESPONSE)
        if reply is None:
            break
        try:
            status, managed = parse_open_session(reply, sid)
        except IpmiError as e:
            raise CheckError("protocol", f"Open Session Response (cipher suite 3): {e.detail}") from None
        if status != "accepted":
            break                     # no cipher suite 3: no RAKP-HMAC-SHA1 to read
        tried.append(user)
        answer = bmc.ask(rakp1(managed, secrets.token_bytes(16), user), PAYLOAD_RAKP2)
        if answer is not None:
            try:
                rstatus, code = parse_rakp2(answer, sid)
            except IpmiError as e:
                raise CheckError("protocol", f"RAKP Message 2: {e.detail}") from None
            if rstatus == "accepted" and code:
                disclosed.append(user)
                ctx.allow()
                bmc.sock.send(rakp3_abort(managed))   # no answer expected
    return {"rakp_tried": tried, "rakp_hash_users": disclosed}


def run(ctx: CheckContext) -> list[Observation]:
    bmc = _Bmc(ctx)
    try:
        answer = bmc.ask(auth_capabilities_request())
        if answer is None:
            ctx.note_silence("no answer to Get Channel Authentication Capabilities")
            raise CheckError("timeout", f"no IPMI answer from {ctx.address}:623/udp in {TRIES} tries")
        try:
            caps = parse_auth_capabilities(answer)
        except IpmiError as e:
            raise CheckNotApplicable(f"not IPMI: {e.detail}") from None
        if caps.completion_code:
            raise CheckError("protocol", f"Get Channel Authentication Capabilities refused "
                                         f"(completion code {caps.completion_code:#04x})")
        data = {"ipmi_versions": caps.ipmi_versions, "auth_types": caps.auth_types,
                "anonymous_login": caps.anonymous_login, "null_usernames": caps.null_usernames,
                "non_null_usernames": caps.non_null_usernames, "user_level_auth": caps.user_level_auth,
                "per_message_auth": caps.per_message_auth, "oem_id": caps.oem_id,
                "cipher_zero": None, "cipher_zero_status": ""}
        if "2.0" not in caps.ipmi_versions:
            data["cipher_zero_status"] = "not asked: IPMI 1.5 only"
        elif ctx.safe_mode:
            data["cipher_zero_status"] = "not asked: safe mode"
        else:
            sid = secrets.randbits(32) | 1
            reply = bmc.ask(open_session_request(sid))
            if reply is None:
                data["cipher_zero_status"] = "no answer"
            else:
                try:
                    status = parse_open_session_response(reply, sid)
                except IpmiError as e:
                    raise CheckError("protocol", f"Open Session Response: {e.detail}") from None
                data.update(cipher_zero=status == "accepted", cipher_zero_status=status)
        data.update(_rakp(ctx, bmc) if "2.0" in caps.ipmi_versions and not ctx.safe_mode
                    else {"rakp_tried": [], "rakp_hash_users": []})
        return [ctx.observation("rmcp", data)]
    finally:
        bmc.close()
