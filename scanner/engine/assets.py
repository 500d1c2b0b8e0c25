"""Asset classification: inventory first (it is the hospital's own word), then what the services say, then (after
the checks ran) what the checks saw: refine_from_observations."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from scanner.core.models import Asset, Observation, Service
from scanner.engine.inventory import Inventory, InventoryEntry, class_for_role

MEDICAL_SERVICES = {"dicom", "dicom-tls", "hl7-mllp"}
NETWORK_HINTS = {"snmp"}
SERVER_SERVICES = {"ssh", "http", "https", "mysql", "postgresql", "redis", "ms-sql-s", "oracle", "ldap", "smtp",
                   "imap", "pop3", "rsync", "nfs", "mongodb", "memcached", "domain"}
WORKSTATION_SERVICES = {"ms-wbt-server", "microsoft-ds", "netbios-ssn", "vnc"}
ROLE_CRITICALITY = {"his": 5, "emr": 5, "pacs": 5, "lis": 5, "infusion-pump": 5, "patient-monitor": 5,
                    "modality": 4, "hl7-engine": 4, "database": 4, "network-device": 4, "backup-server": 4,
                    "portal": 3, "workstation": 2, "domain-controller": 5}
DC_ROLE = "domain-controller"
# discovered classes a fact may correct to "server"; medical-device and network-device stay (their fragility and
# rules were decided at discovery, and a check's fact is weaker evidence than a DICOM or SNMP answer)
REFINABLE_CLASSES = {"unknown", "workstation"}


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


def _facts(observations: Iterable[Observation]) -> tuple[str, str]:
    """(domain-controller evidence, server-OS evidence) from the checks' facts; '' when none."""
    dc, server_os = "", ""
    for o in observations:
        if o.check_id == "ldap.anonymous" and o.key == "directory":
            root = o.data.get("root_dse") or {}
            if root.get("readable") and root.get("domain_controller") is True and not dc:
                host = str(root.get("dns_host_name") or "")[:100]
                dc = ("ldap.anonymous: the root DSE publishes domainControllerFunctionality"
                      + (f" ({host})" if host else ""))
        elif o.check_id == "smb.shares":
            os_name = str((o.data.get("server") or {}).get("os") or "")[:100]
            if "server" in os_name.lower() and not server_os:
                server_os = f"smb.shares: the server names its OS {os_name!r}"
    return dc, server_os


def refine_from_observations(asset: Asset, observations: Iterable[Observation],
                             entry: InventoryEntry | None) -> Asset | None:
    """The asset with its class and role corrected by what the checks saw, or None when nothing changes.

    Discovery classifies by port and service name before any check runs; a Windows domain controller whose LDAP
    port is filtered looks like a workstation (445 only). Facts that settle it:
      - ldap.anonymous: the root DSE publishes domainControllerFunctionality (AD and Samba AD do, on every DC)
        -> role domain-controller, class server;
      - smb.shares: the OS the server names contains "Server" (SMB1's NativeOS, e.g. "Windows Server 2008 R2
        Standard 7601 Service Pack 1") -> class server.
    The inventory always wins: a declared class (or a role that implies one) is kept, a declared role is kept.
    Only unknown and workstation are corrected to server. An undeclared criticality is filled from the new role,
    as discovery fills it from a declared one. Idempotent: evidence is added once.
    """
    dc, server_os = _facts(o for o in observations if o.address == asset.address)
    if not dc and not server_os:
        return None
    declared_class = bool(entry and (entry.cls or class_for_role(entry.role)))
    declared_role = bool(entry and entry.role)
    cls, role, crit = asset.cls, asset.role, asset.criticality
    evidence = list(asset.class_evidence)
    if dc and not declared_role:
        role = DC_ROLE
        if not (entry and entry.criticality):
            crit = ROLE_CRITICALITY[DC_ROLE]
    if not declared_class and cls in REFINABLE_CLASSES:
        cls = "server"
    for line in (dc, server_os):
        if line and line not in evidence:
            evidence.append(line)
    if (cls, role, crit, evidence) == (asset.cls, asset.role, asset.criticality, asset.class_evidence):
        return None
    return dataclasses.replace(asset, cls=cls, role=role, criticality=crit, class_evidence=evidence)
