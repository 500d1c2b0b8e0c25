"""snmp.v3: the SNMPv3 agent's engine (RFC 3414 discovery, no user) and which user names from a short sourced list
it lets read sysDescr.0 without authentication (noAuthNoPriv). No key, no password, no SET; one GET per name.

Facts only; crypto.cleartext.snmp-v3-noauth judges. Observation key `snmpv3`:
    engine_id (hex), enterprise (IANA number from the engine ID), boots, tried,
    noauth_users   -- names answered with a value at noAuthNoPriv (no authentication at all)
    auth_users     -- names that exist but need authentication (authorizationError / unsupportedSecLevel)
    sys_descr      -- what a noAuthNoPriv user could read ("" when none could)

With an `snmpv3` credential for the address (credentials file: user, auth_protocol MD5|SHA|SHA-224|SHA-256|
SHA-384|SHA-512, auth_key, optional priv_protocol DES|AES and priv_key), one more GET of sysDescr.0 as that user
at authPriv (authNoPriv without priv_protocol), its digest checked and its answer decrypted with the same keys.
Observation key `snmpv3-credential` (crypto.snmp.v3-weak-algorithms judges):
    user, auth_protocol, priv_protocol ("" = none), level, accepted (true: an authenticated Response came back;
    false: a Report refused it; null: no answer), answer ("response", the Report's usmStats name, or
    "no answer"). Without a credential: {unavailable: "no snmpv3 credential ..."} (the rule is not assessed).
An agent answers a wrong digest the same way whatever protocol its user has, so MD5/DES users cannot be found
without their keys.
"""

from __future__ import annotations

import os
import socket
import time

from checks.snmp import _v3 as v3
from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation

META = CheckMeta(
    id="snmp.v3",
    version="1.1",
    title_zh="SNMPv3引擎与免认证用户",
    title_en="SNMPv3 engine and users readable without authentication",
    granularity="service",
    proto="udp",
    services=("snmp",),
    ports=(161,),
    capabilities=("AUTH",),
    timeout=30.0,
    description="SNMPv3 engine discovery, then one noAuthNoPriv GET of sysDescr.0 per user name of a short "
                "sourced list (baselines/knowledge/snmp_v3_users.yaml); with an snmpv3 credential, one "
                "authenticated GET as that user. No SET.",
)
WAIT = 2.0
TRIES = 2


class _Agent:
    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET6 if ":" in ctx.address else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((ctx.address, ctx.port or 161))
        self.next_id = int.from_bytes(os.urandom(3), "big")
        self.unreadable = ""

    def ask(self, make, keys: v3.UserKeys | None = None) -> v3.V3Answer | None:
        """Send make(msg_id, request_id); the answer with that message id, or None after TRIES."""
        for _ in range(TRIES):
            self.next_id = (self.next_id + 1) % 0x7FFFFFFF
            msg_id = self.next_id
            self.ctx.allow()
            deadline = time.monotonic() + min(WAIT, self.ctx.remaining())
            try:
                self.sock.send(make(msg_id, msg_id))
                while (left := deadline - time.monotonic()) > 0:
                    self.sock.settimeout(left)
                    data = self.sock.recv(v3.MAX_SIZE)
                    try:
                        answer = v3.decode(data, keys)
                    except v3.SnmpV3Error as e:
                        self.unreadable = str(e)
                        continue
                    if answer.msg_id == msg_id:
                        return answer
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                raise CheckError("connectivity", f"{self.ctx.address}:161/udp port unreachable") from None
        return None

    def close(self) -> None:
        self.sock.close()


def _credential_facts(ctx: CheckContext, agent: _Agent, engine: v3.V3Answer) -> Observation:
    """One authenticated GET with the configured snmpv3 credential (never a SET)."""
    cred = ctx.credential("snmpv3")
    if cred is None:
        return ctx.observation("snmpv3-credential", {
            "unavailable": "no snmpv3 credential for this address: the user's algorithms were not tried"})
    auth, priv = cred.extra["auth_protocol"], cred.extra.get("priv_protocol") or ""
    keys = v3.localize(cred.user, auth, cred.extra["auth_key"], priv, cred.extra.get("priv_key") or "",
                       engine.engine_id)
    boots, etime = engine.boots, engine.time
    agent.unreadable = ""
    a = None
    for _ in range(2):      # RFC 3414 4: a notInTimeWindow Report carries the agent's clock; try once more with it
        a = agent.ask(lambda m, r, b=boots, t=etime: v3.get_authenticated(m, r, keys, engine.engine_id, b, t), keys)
        if a is None or a.report != "notInTimeWindow":
            break
        boots, etime = a.boots, a.time
    if a is None:
        accepted, answer = None, f"unreadable: {agent.unreadable}" if agent.unreadable else "no answer"
    elif a.pdu == "response":
        accepted, answer = True, "response"
    else:
        accepted, answer = False, a.report or a.pdu
    return ctx.observation("snmpv3-credential", {
        "user": cred.user, "auth_protocol": auth, "priv_protocol": priv,
        "level": "authPriv" if priv else "authNoPriv", "accepted": accepted, "answer": answer[:60]})


def run(ctx: CheckContext) -> list[Observation]:
    agent = _Agent(ctx)
    try:
        engine = agent.ask(v3.discovery)
        if engine is None:
            if agent.unreadable:
                raise CheckError("protocol", f"no readable SNMPv3 answer: {agent.unreadable}")
            raise CheckNotApplicable("no answer to SNMPv3 engine discovery (v1/v2c only, or not SNMP)")
        if not engine.engine_id:
            raise CheckError("protocol", f"SNMPv3 discovery answered without an engine ID ({engine.pdu})")
        noauth, needs_auth, descr = [], [], ""
        users = list(ctx.knowledge["snmp_v3_users"]["users"])
        for user in users:
            a = agent.ask(lambda m, r, u=user: v3.get(m, r, u, engine.engine_id, engine.boots, engine.time))
            if a is None:
                continue
            if a.pdu == "response" and a.error_status == 0:
                noauth.append(user)
                descr = descr or (a.values[0] if a.values else "")
            elif (a.pdu == "response" and a.error_status == 16) or a.report == "unsupportedSecLevel":
                needs_auth.append(user)      # authorizationError: the user exists, not at this level
        eid = engine.engine_id
        credential = _credential_facts(ctx, agent, engine)
        return [credential, ctx.observation("snmpv3", {
            "engine_id": eid.hex(), "enterprise": int.from_bytes(eid[:4], "big") & 0x7FFFFFFF if len(eid) >= 4
            else None, "boots": engine.boots, "tried": users, "noauth_users": noauth, "auth_users": needs_auth,
            "sys_descr": descr[:200]})]
    finally:
        agent.close()
