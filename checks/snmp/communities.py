"""snmp.communities: which communities from a short, sourced list does an SNMP v1/v2c agent accept, and
may they write?

Reads: GET sysDescr.0, sysObjectID.0, sysName.0 once per (version, community) from
baselines/knowledge/snmp_communities.yaml; all requests go out paced through the context, answers are
collected in one window (an agent stays silent on a wrong community, so waiting per request would be slow).

Write access WITHOUT WRITING: for each accepted community, GET sysLocation.0 and SET it to the value just
read (a no-op write: the value stays what it was). The agent's error status tells read-only
(noAccess/authorizationError/readOnly) from read-write (noError, or notWritable/wrongValue/... which come
after the access check). Not done in safe mode (fragile/medical assets): access is then "unknown".
Observation key `snmp`: {versions, communities: [{name, entry, versions, access}], sys_descr, sys_object_id,
sys_name, write_test}.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from checks.snmp import _wire as wire
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="snmp.communities",
    version="1.0",
    title_zh="SNMP团体名与读写权限",
    title_en="SNMP v1/v2c communities and write access",
    granularity="service",
    proto="udp",
    services=("snmp",),
    ports=(161,),
    capabilities=("AUTH",),
    timeout=30.0,
    description="GET of system objects per (version, community) from a short sourced list; a same-value "
                "SET of sysLocation.0 tells read-only from read-write (skipped in safe mode).",
)
WINDOW = 2.0          # seconds to wait for answers after the last request
SET_TIMEOUT = 2.5
SET_TRIES = 2


def communities(ctx: CheckContext) -> list[dict[str, Any]]:
    table = ctx.knowledge.get("snmp_communities") or {}
    items = table.get("communities") or []
    if not items:
        raise CheckError("unsupported", "knowledge table snmp_communities has no communities")
    return [{"entry": str(c["id"]), "name": str(c["name"])} for c in items]


class Agent:
    """One UDP socket to the asset's SNMP port; requests are paced and scoped by the context."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        family = socket.AF_INET6 if ":" in ctx.address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.addr = (ctx.address, ctx.port or 161)
        # connected: the kernel then reports ICMP port-unreachable (ECONNREFUSED) and filters other peers
        self.sock.connect(self.addr)
        self.next_id = int.from_bytes(os.urandom(3), "big")
        self.unreadable = 0              # datagrams from the agent that were no SNMP response we could read
        self.last_error = ""

    def send(self, payload: bytes) -> None:
        self.ctx.allow()
        try:
            self.sock.send(payload)
        except ConnectionRefusedError:          # an earlier datagram drew ICMP port-unreachable
            raise CheckError("connectivity", f"{self.ctx.address}:{self.addr[1]}/udp port unreachable") from None

    def request_id(self) -> int:
        self.next_id = (self.next_id + 1) % 0x7FFFFFFF
        return self.next_id

    def collect(self, wanted: set[int], wait: float) -> dict[int, wire.Response]:
        got: dict[int, wire.Response] = {}
        deadline = time.monotonic() + min(wait, self.ctx.remaining())
        while wanted - set(got) and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(wire.MAX_DATAGRAM)
            except TimeoutError:
                break
            except ConnectionRefusedError:      # ICMP port unreachable: nothing listens
                raise CheckError("connectivity", f"{self.ctx.address}:{self.addr[1]}/udp port unreachable") from None
            try:
                r = wire.decode(data)
            except wire.SnmpError as e:
                self.unreadable += 1
                self.last_error = str(e)
                continue
            if r.request_id in wanted:
                got[r.request_id] = r
        return got

    def close(self) -> None:
        self.sock.close()


def run(ctx: CheckContext) -> list[Observation]:
    agent = Agent(ctx)
    try:
        return [ctx.observation("snmp", survey(ctx, agent))]
    finally:
        agent.close()


def survey(ctx: CheckContext, agent: Agent) -> dict[str, Any]:
    sent: dict[int, tuple[str, dict[str, Any]]] = {}
    for c in communities(ctx):
        for version in ("v1", "v2c"):
            rid = agent.request_id()
            agent.send(wire.encode_get(version, c["name"], rid, [wire.SYS_DESCR, wire.SYS_OBJECT_ID, wire.SYS_NAME]))
            sent[rid] = (version, c)
    answers = agent.collect(set(sent), WINDOW)
    if not answers and agent.unreadable:
        # it answered, in nothing we can read (wrong ASN.1 types, garbage): "no community accepted" would be
        # a pass we never saw
        raise CheckError("protocol", f"{agent.unreadable} answer(s) from the agent, none a readable SNMP v1/v2c "
                                     f"response ({agent.last_error[:80]})")
    accepted: dict[str, dict[str, Any]] = {}
    system: dict[str, Any] = {}
    for rid, r in sorted(answers.items()):
        version, c = sent[rid]
        if r.community != c["name"] or r.error_status not in (0, 2):
            continue          # a v1 agent answers noSuchName for unknown objects: still an accepted community
        entry = accepted.setdefault(c["name"], {"name": c["name"], "entry": c["entry"], "versions": [],
                                                "access": "unknown"})
        entry["versions"].append(version)
        for oid, value in r.varbinds:
            key = {wire.SYS_DESCR: "sys_descr", wire.SYS_OBJECT_ID: "sys_object_id", wire.SYS_NAME: "sys_name"}.get(oid)
            if key and value is not None and key not in system:
                system[key] = wire.text(value)
    write_test = "skipped: safe mode (fragile or medical asset)" if ctx.safe_mode else "same-value SET of sysLocation.0"
    if accepted and not ctx.safe_mode:
        for entry in accepted.values():
            entry["access"], entry["set_answer"] = write_access(agent, entry)
    return {"versions": sorted({v for e in accepted.values() for v in e["versions"]}),
            "communities": sorted(accepted.values(), key=lambda e: e["name"]),
            "sys_descr": system.get("sys_descr", ""), "sys_object_id": system.get("sys_object_id", ""),
            "sys_name": system.get("sys_name", ""), "tried": len(sent), "write_test": write_test}


def _ask(agent: Agent, make: Any) -> wire.Response | None:
    """One request, re-sent once with a fresh id when unanswered: agents stall at times (net-snmp while it
    refreshes its caches), and a lost datagram must not read as "unknown access"."""
    for _ in range(SET_TRIES):
        rid = agent.request_id()
        agent.send(make(rid))
        r = agent.collect({rid}, SET_TIMEOUT).get(rid)
        if r is not None:
            return r
    return None


def write_access(agent: Agent, entry: dict[str, Any]) -> tuple[str, str]:
    """GET sysLocation.0, then SET it to exactly that value (no change). Returns (access, agent's answer)."""
    version, name = ("v2c" if "v2c" in entry["versions"] else "v1"), entry["name"]
    r = _ask(agent, lambda rid: wire.encode_get(version, name, rid, [wire.SYS_LOCATION]))
    if r is None or r.error_status or not r.varbinds or not isinstance(r.varbinds[0][1], bytes):
        return "unknown", "sysLocation.0 not readable: write test not attempted"
    current = r.varbinds[0][1]
    s = _ask(agent, lambda rid: wire.encode_set_string(version, name, rid, wire.SYS_LOCATION, current))
    if s is None:
        return "unknown", "no answer to the same-value SET"
    return wire.classify_set(version, s.error_status), f"{version} {wire.ERRORS.get(s.error_status, s.error_status)}"
