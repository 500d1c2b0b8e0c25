"""The hospital's asset inventory (YAML): role, owner, zone, criticality; feeds classification and grading."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.core.errors import UsageError
from scanner.core.knowledge import read_yaml
from scanner.core.vocab import ASSET_CLASSES, ZONES

# Roles whose data or function is core to care (the spec's tertiary core systems) or patient-connected.
ROLE_CLASS = {
    "his": "server", "emr": "server", "lis": "server", "ris": "server", "database": "server",
    "pacs": "medical-device", "modality": "medical-device", "hl7-engine": "medical-device",
    "infusion-pump": "medical-device", "patient-monitor": "medical-device", "medical-device": "medical-device",
    "network-device": "network-device", "switch": "network-device", "router": "network-device",
    "firewall": "network-device", "workstation": "workstation", "portal": "server",
    "backup-server": "server", "server": "server", "domain-controller": "server",
}


@dataclass
class InventoryEntry:
    address: str
    name: str = ""
    role: str = ""
    cls: str = ""
    owner: str = ""
    zone: str = ""
    criticality: int = 0
    fragile: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inventory:
    entries: dict[str, InventoryEntry] = field(default_factory=dict)
    path: str = ""

    def get(self, address: str) -> InventoryEntry | None:
        return self.entries.get(address)

    def to_dict(self) -> dict[str, Any]:
        return {a: {"name": e.name, "role": e.role, "class": e.cls, "owner": e.owner, "zone": e.zone,
                    "criticality": e.criticality, "fragile": e.fragile, **e.extra}
                for a, e in self.entries.items()}


def _entry(raw: Any, where: str) -> InventoryEntry:
    if not isinstance(raw, dict) or "address" not in raw:
        raise UsageError(f"{where}: each asset needs an 'address'")
    raw = dict(raw)
    try:
        address = str(ipaddress.ip_address(str(raw.pop("address"))))
    except ValueError:
        raise UsageError(f"{where}: not an IP address") from None
    cls = str(raw.pop("class", "") or "")
    if cls and cls not in ASSET_CLASSES:
        raise UsageError(f"{where}: class must be one of {', '.join(ASSET_CLASSES)}, not {cls!r}")
    zone = str(raw.pop("zone", "") or "")
    if zone and zone not in ZONES:
        raise UsageError(f"{where}: zone must be one of {', '.join(ZONES)}, not {zone!r}")
    crit = raw.pop("criticality", 0) or 0
    if not isinstance(crit, int) or not 0 <= crit <= 5:
        raise UsageError(f"{where}: criticality must be an integer 1-5")
    fragile = raw.pop("fragile", None)
    if "hl7" in raw:
        raw["hl7"] = _hl7(raw["hl7"], where)
    return InventoryEntry(address=address, name=str(raw.pop("name", "") or ""), role=str(raw.pop("role", "") or ""),
                          cls=cls, owner=str(raw.pop("owner", "") or ""), zone=zone, criticality=crit,
                          fragile=None if fragile is None else bool(fragile), extra=raw)


MAX_HL7_PORTS = 16


def _hl7(value: Any, where: str) -> dict[str, Any]:
    """`hl7: {ports: [6661, ...]}`: TCP ports where the hospital says an HL7 MLLP listener runs (a Mirth channel
    on 6661, say). On a fragile asset discovery names them hl7-mllp, so hl7.mllp speaks to them once."""
    ports = value.get("ports") if isinstance(value, dict) else None
    if not isinstance(ports, list) or not ports or len(ports) > MAX_HL7_PORTS or not all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 65535 for x in ports):
        raise UsageError(f"{where}: hl7 must be a mapping with 'ports': a list of 1-{MAX_HL7_PORTS} TCP port numbers")
    return {**value, "ports": sorted(set(ports))}


def declared_hl7_ports(entry: InventoryEntry | None) -> list[int]:
    return list((entry.extra.get("hl7") or {}).get("ports", [])) if entry else []


def load_inventory(path: str | None) -> Inventory:
    if not path:
        return Inventory()
    p = Path(path)
    raw = read_yaml(p, "inventory")      # bounded: no alias bomb, no deep nesting (scanner/core/knowledge.py)
    if not isinstance(raw, dict) or not isinstance(raw.get("assets"), list):
        raise UsageError(f"inventory {path}: expected a mapping with a list 'assets'")
    inv = Inventory(path=str(p))
    for i, item in enumerate(raw["assets"]):
        e = _entry(item, f"inventory {path}: asset #{i + 1}")
        inv.entries[e.address] = e
    return inv


def class_for_role(role: str) -> str:
    return ROLE_CLASS.get(role.lower(), "")
