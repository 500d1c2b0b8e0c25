"""Classification after the checks (scanner/engine/assets.py refine_from_observations): a domain controller named
by its root DSE, a Windows server named by its SMB OS string; the inventory always wins. The real-daemon proof is
tests/checks/test_ldap_policy.py (two Samba AD DCs, one with an inventory class)."""

from __future__ import annotations

from scanner.core.models import Asset, Observation, Service
from scanner.engine.assets import build_asset, refine_from_observations
from scanner.engine.inventory import Inventory, InventoryEntry

ADDR = "10.77.0.5"
DC_LINE = "ldap.anonymous: the root DSE publishes domainControllerFunctionality (dc01.tcm.local)"


def directory(dc: bool, address: str = ADDR, readable: bool = True) -> Observation:
    return Observation("ldap.anonymous", address, 389, "directory",
                       {"root_dse": {"readable": readable, "domain_controller": dc, "dns_host_name": "dc01.tcm.local"}})


def smb(os_name: str) -> Observation:
    return Observation("smb.shares", ADDR, 445, "shares", {"server": {"os": os_name}})


def asset(cls: str, services: tuple[str, ...] = ("microsoft-ds",), inv: InventoryEntry | None = None) -> Asset:
    inventory = Inventory({ADDR: inv} if inv else {})
    a = build_asset(ADDR, [Service(port=445, name=n) for n in services], inventory)
    assert a.cls == cls
    return a


def test_a_dc_seen_as_a_workstation_becomes_a_server_with_the_dc_role():
    a = asset("workstation")
    new = refine_from_observations(a, [directory(True)], None)
    assert (new.cls, new.role, new.criticality) == ("server", "domain-controller", 5)
    assert new.class_evidence == [*a.class_evidence, DC_LINE]
    # idempotent: a resumed scan refines again and changes nothing
    assert refine_from_observations(new, [directory(True)], None) is None


def test_an_openldap_server_or_an_unreadable_root_dse_changes_nothing():
    a = asset("workstation")
    assert refine_from_observations(a, [directory(False)], None) is None
    assert refine_from_observations(a, [directory(True, readable=False)], None) is None
    assert refine_from_observations(a, [directory(True, address="10.77.0.6")], None) is None


def test_the_inventory_class_and_role_win():
    declared = InventoryEntry(address=ADDR, cls="workstation")
    a = asset("workstation", inv=declared)
    new = refine_from_observations(a, [directory(True)], declared)
    assert (new.cls, new.role, new.criticality) == ("workstation", "domain-controller", 5)
    by_role = InventoryEntry(address=ADDR, role="HIS", criticality=3)
    a = asset("server", inv=by_role)
    new = refine_from_observations(a, [directory(True)], by_role)
    assert (new.cls, new.role, new.criticality) == ("server", "HIS", 3) and new.class_evidence[-1] == DC_LINE
    own_role = InventoryEntry(address=ADDR, role="ad-primary")      # a role that implies no class
    a = asset("workstation", inv=own_role)
    new = refine_from_observations(a, [directory(True)], own_role)
    assert (new.cls, new.role) == ("server", "ad-primary")


def test_a_declared_dc_role_is_a_server_at_discovery():
    e = InventoryEntry(address=ADDR, role="domain-controller")
    a = asset("server", inv=e)
    assert (a.criticality, a.class_evidence[0]) == (5, "inventory role domain-controller")


def test_medical_and_network_classes_are_not_corrected():
    a = asset("medical-device", services=("dicom", "microsoft-ds"))
    new = refine_from_observations(a, [directory(True)], None)
    assert (new.cls, new.role) == ("medical-device", "domain-controller")


def test_smb_server_os_makes_a_server_without_a_role():
    a = asset("workstation")
    new = refine_from_observations(a, [smb("Windows Server 2008 R2 Standard 7601 Service Pack 1")], None)
    assert (new.cls, new.role, new.criticality) == ("server", "", 0)
    assert new.class_evidence[-1] == "smb.shares: the server names its OS 'Windows Server 2008 R2 Standard 7601 Service Pack 1'"
    assert refine_from_observations(a, [smb("Windows 10.0 Build 19041"), smb("")], None) is None
