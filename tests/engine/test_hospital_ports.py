"""The hospital port list (baselines/knowledge/hospital_ports.yaml) holds what issue 17 says hospitals run, and
discovery asks nmap for exactly those ports (TCP always; UDP where it can send raw packets). nmap is not run:
_nmap_scan is replaced by a recorder."""

from __future__ import annotations

import pytest

from scanner.engine import discovery
from scanner.engine.discovery import hospital_ports

# issue 17, "Discovery that sees a hospital"
EXPECTED_TCP = {
    "mqtt": {1883, 8883},
    "pacs web and dicom": {8042, 4242, 8080, 104, 11112},
    "hl7 engines": {2575, *range(6660, 6670)},
    "search and analytics": {9200, 5601},
    "databases": {1433, 1521, 3306, 5432, 27017, 6379, 1972},
    "remote access": {3389, *range(5900, 5911)},
    "directory and file": {389, 636, 445, 139},
}
EXPECTED_UDP = [69, 123, 161, 623, 1900, 5353]


def test_the_list_holds_what_hospitals_run() -> None:
    hp = hospital_ports()
    assert {group: sorted(ports - set(hp["tcp"])) for group, ports in EXPECTED_TCP.items()} == {
        group: [] for group in EXPECTED_TCP}
    assert hp["udp"] == EXPECTED_UDP


def test_the_list_is_well_formed() -> None:
    hp = hospital_ports()
    for proto in ("tcp", "udp"):
        ports = hp[proto]
        assert ports == sorted(set(ports)), f"{proto}: sorted, no duplicates"
        assert all(isinstance(p, int) and 1 <= p <= 65535 for p in ports)
    from scanner.core.knowledge import knowledge

    names = knowledge()["hospital_ports"]["names"]
    assert set(map(int, names)) <= set(hp["tcp"]), "a named port is a probed port"
    assert set(hp["no_version_probe"]) <= set(hp["tcp"])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(discovery, "_nmap_scan", lambda address, args: calls.append(args) or {})
    return calls


def _ports(args: str) -> tuple[set[int], set[int]]:
    spec = args.split("-p ", 1)[1].split()[0]
    tcp: set[int] = set()
    udp: set[int] = set()
    target = tcp
    for part in spec.split(","):
        if part.startswith("T:"):
            target, part = tcp, part[2:]
        elif part.startswith("U:"):
            target, part = udp, part[2:]
        target.add(int(part))
    return tcp, udp


def test_discovery_asks_nmap_for_the_list(recorded: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    hp = hospital_ports()
    # an ordinary host with raw sockets: top 1000 + the list on TCP, the UDP list with -sU
    monkeypatch.setattr(discovery, "_is_loopback", lambda address: False)
    discovery.scan_services("127.17.0.250", raw=True, fragile=False)
    # two passes side by side: SYN on TCP, -sU on the UDP list
    by_kind = {"-sU" in args: args for args in recorded}
    assert len(recorded) == 2 and set(by_kind) == {True, False}
    assert _ports(by_kind[True]) == (set(), set(hp["udp"]))
    tcp, udp = _ports(by_kind[False])
    assert "-sS" in by_kind[False] and udp == set()
    assert set(hp["tcp"]) <= tcp and set(discovery.top_tcp_ports()) <= tcp
    # without raw sockets: no UDP
    recorded.clear()
    discovery.scan_services("127.17.0.250", raw=False, fragile=False)
    assert "-sU" not in recorded[0] and _ports(recorded[0])[1] == set()
    # a fragile asset: the list only, connect scan, paced
    recorded.clear()
    discovery.scan_services("127.17.0.250", raw=True, fragile=True)
    assert _ports(recorded[0]) == (set(hp["tcp"]), set()) and "--max-rate 10" in recorded[0]


def test_fragile_asset_declared_hl7_ports_are_scanned_and_named(recorded: list[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Inventory `hl7: {ports: [...]}` joins the fragile connect scan; an open declared port is hl7-mllp."""
    from scanner.core.models import Service

    hp = hospital_ports()
    opened = [Service(7777, name="cbt"), Service(6666, name="irc"), Service(22, name="ssh")]
    monkeypatch.setattr(discovery, "_services_from", lambda host, names: [Service(s.port, name=s.name)
                                                                          for s in opened])
    out = discovery.scan_services("127.27.0.250", raw=False, fragile=True, hl7_ports=[6666, 7777])
    assert _ports(recorded[0]) == (set(hp["tcp"]) | {7777}, set())
    assert [(s.port, s.name, s.source, s.extrainfo) for s in out] == [
        (7777, "hl7-mllp", "inventory", "declared in the inventory"),
        (6666, "hl7-mllp", "inventory", "declared in the inventory"), (22, "ssh", "nmap", "")]
