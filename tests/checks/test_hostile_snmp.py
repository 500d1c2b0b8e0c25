"""snmp.communities against the lab's hostile SNMP agents on loopback. An agent answering every request in wrong
ASN.1 types (version, community, request id, error status) was read as "no community accepted": a pass on an
agent whose every answer we could not read."""

from __future__ import annotations

from checks.snmp import communities
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import Hostile, context, finishes


def test_answers_in_wrong_types_are_not_a_pass():
    with Hostile("snmp-wrong-types", 161) as h:
        ctx = context(h.address, 161, "snmp", "snmp.communities", timeout=30, proto="udp")
        _, error, seconds = finishes(lambda: communities.run(ctx), 15)
    assert isinstance(error, CheckError)
    assert error.reason == "protocol"
    assert error.detail.startswith("12 answer(s) from the agent, none a readable SNMP v1/v2c response (")
    assert seconds < 4


def test_values_of_wrong_types_are_read_as_what_they_are():
    with Hostile("snmp-wrong-value-types", 161) as h:
        ctx = context(h.address, 161, "snmp", "snmp.communities", timeout=30, proto="udp")
        [obs], error, _ = finishes(lambda: communities.run(ctx), 25)
    assert error is None
    d = obs.data
    assert [(c["name"], c["versions"], c["access"]) for c in d["communities"]] == [
        (n, ["v1", "v2c"], "unknown") for n in ("admin", "cisco", "community", "manager", "private", "public")]
    # a 128-bit INTEGER as sysDescr, text with escapes as sysObjectID (escapes blanked), a Counter64 as sysName
    assert (d["sys_descr"], d["sys_object_id"], d["sys_name"]) == (
        str((1 << 127) - 1), " [31m<script>1</script> [0m", str(int.from_bytes(b"\x01" * 8, "big")))
