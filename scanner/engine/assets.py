"""Asset classification: inventory first (it is the hospital's own word), then what the services say."""

from __future__ import annotations

from scanner.core.models import Asset, Service
from scanner.engine.inventory import Inventory, class_for_role

MEDICAL_SERVICES = {"dicom", "dicom-tls", "hl7-mllp"}
NETWORK_HINTS = {"snmp"}
SERVER_SERVICES = {"ssh", "http", "https", "mysql", "postgresql", "redis", "ms-sql-s", "oracle", "ldap", "smtp",
                   "imap", "pop3", "rsync", "nfs", "mongodb", "memcached", "domain"}
WORKSTATION_SERVICES = {"ms-wbt-server", "microsoft-ds", "netbios-ssn", "vnc"}
ROLE_CRITICALITY = {"his": 5, "emr": 5, "pacs": 5, "lis": 5, "infusion-pump": 5, "patient-monitor": 5,
                    "modality": 4, "hl7-engine": 4, "database": 4, "network-device": 4, "backup-server": 4,
                    "portal": 3, "workstation": 2}


def classify(services: list[Service], inventory_class: str = "", role: str = "") -> tuple[str, list[str]]:
    if inventory_class:
        return inventory_class, [f"inventory declares class {inventory_class}"]
    if role and class_for_role(role):
        return class_for_role(role), [f"inventory role {role}"]
    names = {s.name for s in services}
    evidence: list[str] = []
    med = sorted(names & MEDICAL_SERVICES)
    if med:
        return "medical-device", [f"speaks {', '.join(med)}"]
    if names & NETWORK_HINTS and "telnet" in names and "https" not in names:
        return "network-device", ["SNMP and telnet management without HTTPS"]
    if names & NETWORK_HINTS and not names & SERVER_SERVICES:
        return "network-device", ["SNMP agent without server services"]
    if names & WORKSTATION_SERVICES and not names & SERVER_SERVICES:
        return "workstation", [f"desktop services {', '.join(sorted(names & WORKSTATION_SERVICES))}"]
    if names & SERVER_SERVICES:
        evidence.append(f"server services {', '.join(sorted(names & SERVER_SERVICES))}")
        return "server", evidence
    return "unknown", ["no service identified"]


def build_asset(address: str, services: list[Service], inventory: Inventory, *, name: str = "", mac: str = "",
                how: str = "") -> Asset:
    e = inventory.get(address)
    cls, evidence = classify(services, e.cls if e else "", e.role if e else "")
    if how:
        evidence.append(f"found by {how}")
    zone = (e.zone if e else "") or "user"
    fragile = bool(e.fragile) if e and e.fragile is not None else cls == "medical-device"
    role = e.role if e else ""
    crit = (e.criticality if e and e.criticality else 0) or ROLE_CRITICALITY.get(role.lower(), 0)
    return Asset(address=address, name=(e.name if e else "") or name, mac=mac, cls=cls, class_evidence=evidence,
                 role=role, zone=zone, criticality=crit, owner=e.owner if e else "", fragile=fragile,
                 internet_facing=zone == "internet", services=services, extra=dict(e.extra) if e else {})
