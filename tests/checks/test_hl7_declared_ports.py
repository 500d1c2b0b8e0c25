"""A listener nmap cannot name on a fragile asset is tried as MLLP only where the inventory declares it
(`hl7: {ports: [...]}`): discovery sends fragile assets no probe of its own, so without the declaration an MLLP
listener on a non-standard port (a Mirth channel on 6661) is never spoken to; with it, hl7.mllp sends its one
harmless message. MLLP listeners on 127.27.0.71-73 (tests/checks/test_hl7_mllp.py's MllpPeer); the CLI scan's
findings, and what each listener received, are asserted exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scanner.core.errors import UsageError
from scanner.engine.inventory import load_inventory
from tests.checks.test_hl7_mllp import MllpPeer
from tests.helpers import scan

DECLARED, UNDECLARED, ODD_PORT = "127.27.0.71", "127.27.0.72", "127.27.0.73"


def test_declared_ports_are_tried_as_mllp_on_fragile_assets(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    pump = {"role": "infusion-pump", "class": "medical-device", "zone": "clinical", "fragile": True}
    inv.write_text(yaml.safe_dump({"assets": [
        {"address": DECLARED, "name": "lis-engine", **pump, "hl7": {"ports": [6661]}},
        {"address": UNDECLARED, "name": "lis-engine-2", **pump},
        {"address": ODD_PORT, "name": "lis-engine-3", **pump, "hl7": {"ports": [7777]}}]}))
    peers = {DECLARED: MllpPeer(DECLARED, 6661), UNDECLARED: MllpPeer(UNDECLARED, 6661),
             ODD_PORT: MllpPeer(ODD_PORT, 7777)}
    try:
        _sid, found = scan(list(peers), scope=["127.27.0.64/26"], db=tmp_path / "s.db", checks=["hl7"],
                           inventory=str(inv))
    finally:
        for p in peers.values():
            p.close()
    assert {(f["address"], f["rule_id"], f["port"]) for f in found} == {
        (DECLARED, "medical.hl7.unauthenticated-ack", 6661), (DECLARED, "medical.hl7.plaintext", 6661),
        (ODD_PORT, "medical.hl7.unauthenticated-ack", 7777), (ODD_PORT, "medical.hl7.plaintext", 7777)}
    # one harmless message each where declared (7777 is in no port list: the declaration adds it to the scan);
    # the undeclared listener got the connect scan's connection and nothing else
    assert [len(peers[a].received) for a in (DECLARED, UNDECLARED, ODD_PORT)] == [1, 0, 1]
    assert all(b"|ACK|" in m and b"|T|" in m for a in (DECLARED, ODD_PORT) for m in peers[a].received)


@pytest.mark.parametrize("value", [{"ports": []}, {"ports": [0]}, {"ports": [70000]}, {"ports": ["6661"]},
                                   {"ports": [True]}, {"ports": list(range(1, 18))}, [6661], "6661", {"port": 6661}])
def test_inventory_hl7_declaration_checked(tmp_path: Path, value) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [{"address": DECLARED, "hl7": value}]}))
    with pytest.raises(UsageError, match="hl7 must be a mapping with 'ports': a list of 1-16 TCP port numbers"):
        load_inventory(str(inv))


def test_inventory_hl7_declaration_kept(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"assets": [{"address": DECLARED, "hl7": {"ports": [6662, 6661, 6661]}}]}))
    assert load_inventory(str(inv)).get(DECLARED).extra["hl7"] == {"ports": [6661, 6662]}
