"""host.host-key: the SSH host key the host presented, against our pin file (pinned beforehand with
`tcmscan keys pin`, or on first use in mode tofu).

Its own check, apart from host.snapshot, so that a changed key can be a finding while every rule that
reads the snapshot says "not assessed": host.snapshot raises host-key-changed (its attempt errs, so
scanner/assess/evaluate.py marks its rules not assessed), and this check completes with
{changed: true, ...}, which rule hardening.host-key-changed reads. Both use the one shared session;
the key is compared before authentication, so a wrong password still yields the host-key fact.
Pins are per host: a key of another type than the pinned one is a change too (`pinned_key_type` says which
was expected). In strict mode an unpinned host is not logged in to and this check errs the same way
(reason host-key-unpinned): a key nobody vouched for proves nothing, so the rule is not assessed.
"""

from __future__ import annotations

from typing import Any

from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation
from scanner.sdk.ssh_session import host_key_facts, host_session

META = CheckMeta(
    id="host.host-key",
    version="1.1",
    title_zh="SSH主机密钥固定",
    title_en="SSH host key pinning",
    granularity="host",
    classes=("server", "workstation", "unknown", "network-device"),
    intrusive=True,
    needs_credentials="ssh",
    timeout=30.0,
    description="Compares the host key with the host's pins in tcmscan's known-hosts file (any key type); "
                "records a change.",
)


def applies(asset: Any, service: Any) -> bool:
    return any(s.name == "ssh" or s.port == 22 for s in asset.services if s.proto == "tcp")


def run(ctx: CheckContext) -> list[Observation]:
    try:
        host_session(ctx)
    except CheckError:
        facts = host_key_facts(ctx.env, ctx.address)
        if facts is None or facts["status"] == "unpinned":   # no handshake, or no pin to compare with
            raise
    facts = host_key_facts(ctx.env, ctx.address)
    if facts is None:
        raise CheckError("protocol", "the SSH session opened without a recorded host key")
    return [ctx.observation("host-key", {
        "changed": facts["status"] == "changed", "status": facts["status"], "port": facts["port"],
        "key_type": facts["type"], "fingerprint": facts["fingerprint"],
        "pinned_key_type": facts["pinned_type"], "pinned_fingerprint": facts["pinned_fingerprint"]}, port=None)]
