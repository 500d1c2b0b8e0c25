"""Topology loading, validation, generated inventory/credentials/compose (no root needed)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lab import compose, manager
from lab.topology import TOPOLOGY_FILE, TopologyError, load, parse

EXPECTED_HOSTS = [
    ("core-switch", "10.77.0.2", "network-device", "network-device", "management",
     ["ssh/22", "telnet/23", "snmp/161udp"]),
    ("his", "10.77.0.10", "HIS", "server", "server", ["ssh/22", "https/443", "redis/6379"]),
    ("emr-db", "10.77.0.11", "EMR", "server", "server", ["ssh/22", "mysql/3306"]),
    ("pacs", "10.77.0.20", "PACS", "medical-device", "clinical", ["ssh/22", "dicom/104"]),
    ("modality", "10.77.0.21", "modality", "medical-device", "clinical", ["ssh/22", "dicom/11112"]),
    ("hl7", "10.77.0.22", "HL7-engine", "medical-device", "clinical", ["ssh/22", "hl7-mllp/2575", "hl7-mllp/6661"]),
    ("pump", "10.77.0.23", "infusion-pump", "medical-device", "clinical",
     ["ssh/22", "ftp/21", "telnet/23", "http/80"]),
    ("backup", "10.77.0.30", "backup-server", "server", "server", ["ssh/22", "rsync/873"]),
    ("portal", "10.77.0.40", "portal", "server", "internet", ["ssh/22", "http/80", "https/443"]),
    ("hardened", "10.77.0.50", "LIS", "server", "server", ["ssh/22", "https/443"]),
    ("sm-gw", "10.77.0.60", "portal", "server", "internet", ["ssh/22", "tls-shangmi/443"]),
    # issues 15-17: Windows/directory, remote access, data exposure (each weak host with a `-sec` twin)
    ("netcfg", "10.77.0.3", "provisioning-server", "server", "management", ["ssh/22", "tftp/69udp"]),
    ("dc", "10.77.0.12", "domain-controller", "server", "server", ["ssh/22", "msrpc/135", "ldap/389", "microsoft-ds/445", "ldaps/636", "globalcatLDAP/3268"]),
    ("filesrv", "10.77.0.13", "file-server", "server", "server", ["ssh/22", "microsoft-ds/445"]),
    ("filesrv-sec", "10.77.0.14", "file-server", "server", "server", ["ssh/22", "microsoft-ds/445"]),
    ("imaging-ws", "10.77.0.24", "imaging-workstation", "medical-device", "clinical", ["ssh/22", "ms-wbt-server/3389", "vnc/5900"]),
    ("imaging-sec", "10.77.0.25", "imaging-workstation", "medical-device", "clinical", ["ssh/22", "vnc/5900"]),
    ("bmc", "10.77.0.26", "bmc", "network-device", "management", ["ssh/22", "asf-rmcp/623udp"]),
    ("pacs-web", "10.77.0.27", "PACS-web", "server", "clinical", ["ssh/22", "http/8042"]),
    ("pacs-web-sec", "10.77.0.28", "PACS-web", "server", "clinical", ["ssh/22", "http/8042"]),
    ("appsrv", "10.77.0.32", "middleware", "server", "server", ["ssh/22", "http-proxy/8080"]),
    ("appsrv-sec", "10.77.0.33", "middleware", "server", "server", ["ssh/22", "http-proxy/8080"]),
    ("pg-his", "10.77.0.34", "HIS-reporting-db", "server", "server", ["ssh/22", "postgresql/5432"]),
    ("db-sec", "10.77.0.35", "LIS-db", "server", "server", ["ssh/22", "mysql/3306"]),
    ("ward-broker", "10.77.0.36", "nurse-call-broker", "server", "clinical", ["ssh/22", "mqtt/1883"]),
    ("broker-sec", "10.77.0.37", "nurse-call-broker", "server", "clinical", ["ssh/22", "secure-mqtt/8883"]),
    ("research", "10.77.0.41", "research-platform", "server", "server", ["ssh/22", "fhir/8080", "kibana/5601", "elasticsearch/9200"]),
    ("research-sec", "10.77.0.42", "research-platform", "server", "server", ["ssh/22", "fhir/8080", "kibana/5601", "elasticsearch/9200"]),
]


def raw() -> dict:
    return yaml.safe_load(TOPOLOGY_FILE.read_text(encoding="utf-8"))


def test_hosts_exactly_as_contracted() -> None:
    topo = load()
    assert topo.subnet == "10.77.0.0/24"
    assert topo.bridge == "tcmlab0"
    assert topo.gateway == "10.77.0.1"
    got = [(h.name, h.address, h.role, h.klass, h.zone, [s.label() for s in h.services]) for h in topo.hospital]
    assert got == EXPECTED_HOSTS
    assert [h.name for h in topo.hosts if not h.hostile] == [h.name for h in topo.hospital]


def test_status_without_root_lists_hosts() -> None:
    st = manager.status()
    assert st["subnet"] == "10.77.0.0/24"
    assert st["bridge"] == "tcmlab0"
    assert st["inventory"] == "/run/tcmscan-lab/inventory.yaml"
    assert st["credentials"] == "/run/tcmscan-lab/credentials.yaml"
    assert st["ca"] == "/var/lib/tcmscan-lab/pki/ca.pem"
    assert [(h["name"], h["address"], h["role"], h["class"], h["services"]) for h in st["hosts"]] == [
        (n, a, r, c, s) for n, a, r, c, _z, s in EXPECTED_HOSTS]


def test_inventory_generated_from_topology() -> None:
    inv = manager.inventory(load())
    his = next(a for a in inv["assets"] if a["name"] == "his")
    assert his == {"address": "10.77.0.10", "name": "his", "role": "HIS", "class": "server", "owner": "信息科",
                   "zone": "server", "criticality": 5, "fragile": False, "backup_required": True}
    pump = next(a for a in inv["assets"] if a["name"] == "pump")
    assert pump["fragile"] is True
    assert pump["zone"] == "clinical"
    assert [a["name"] for a in inv["assets"] if a["backup_required"]] == ["his", "emr-db", "hardened"]


def test_credentials_generated_from_topology() -> None:
    assert manager.credentials(load()) == {"credentials": [
        {"match": "10.77.0.0/24", "type": "ssh", "user": "root", "key_file": "/var/lib/tcmscan-lab/scanner_ed25519",
         "port": 22, "sudo": False},
        # the domain controller's read-only directory account; LDAPS verified against the lab CA
        {"match": "10.77.0.12", "type": "ldap", "user": "audit@hospital.lab", "password": "Lab#Dc-Audit-2024!x",
         "ca_file": "/var/lib/tcmscan-lab/pki/ca.pem"},
        # db-sec's login-only database account: services.db-tls sees TLS required of it
        {"match": "10.77.0.35", "type": "db", "user": "tcmscan_audit", "password": "Lab#Db-Audit-2024!x",
         "port": 3306}]}


def test_compose_file_in_sync() -> None:
    assert compose.COMPOSE_FILE.read_text(encoding="utf-8") == compose.render(load())


def test_compose_networks_internal_only() -> None:
    doc = compose.compose(load())
    assert doc["networks"] == {"hospital": {"internal": True, "driver": "bridge",
                                            "ipam": {"config": [{"subnet": "10.77.0.0/24",
                                                                 "gateway": "10.77.0.1"}]}}}
    his = doc["services"]["his"]
    assert his["networks"] == {"hospital": {"ipv4_address": "10.77.0.10"}}
    assert his["volumes"] == ["./hosts/_common:/lab/layers/00-_common:ro", "./hosts/his:/lab/layers/01-his:ro"]
    assert his["environment"] == {"LAB_HOST": "his", "LAB_ABSENT_PACKAGES": "telnetd inetutils-telnetd rsyslog"}
    assert "ports" not in his  # nothing published on the machine's own interfaces
    assert "cap_add" not in his  # no firewall to load
    assert doc["services"]["hardened"]["cap_add"] == ["NET_ADMIN"]   # loads its nftables ruleset


def test_host_dirs_exist_for_every_host_and_layer() -> None:
    topo = load()
    hosts_dir = Path(compose.LAB_DIR) / "hosts"
    for h in topo.hosts:
        # a hostile host may be all topology (its behaviours are in lab/topology.yaml, its program in _hostile)
        assert (hosts_dir / h.name).is_dir() or h.hostile, h.name
        for layer in h.layers:
            assert (hosts_dir / f"_{layer}").is_dir(), layer


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["hosts"][0].update(address="10.78.0.2"), "not usable in 10.77.0.0/24"),
    (lambda d: d["hosts"][1].update(address="10.77.0.2"), "duplicate host address"),
    (lambda d: d["hosts"][0].update(**{"class": "router"}), "class 'router' not one of"),
    (lambda d: d["hosts"][0].update(zone="dmz-east"), "zone 'dmz-east' not one of internet, dmz, user, server, management, clinical"),
    (lambda d: d["hosts"][0].update(name="a-very-long-hostname"), "bad host name"),
    (lambda d: d["hosts"][0].update(services=[{"name": "telnet", "port": 23}]), "every host runs sshd"),
    (lambda d: d["hosts"][0].update(address="10.77.0.1"), "not usable"),
    (lambda d: d["hosts"][0].update(plants=["telnet on 23"]), "plants must be a mapping"),
    (lambda d: d["hosts"][0].update(plants={"telnet 23": "telnet"}), "bad plant 'telnet 23'"),
    (lambda d: d["hosts"][0].update(firewall="pf"), "firewall 'pf' not one of"),
])
def test_bad_topologies_rejected(mutate, message: str) -> None:
    data = copy.deepcopy(raw())
    mutate(data)
    with pytest.raises(TopologyError, match=message):
        parse(data)


def test_expected_findings_consistent_with_topology() -> None:
    topo = load()
    names = {h.name for h in topo.hosts}
    doc = yaml.safe_load((compose.LAB_DIR / "expected-findings.yaml").read_text(encoding="utf-8"))
    entries = doc["expected"]
    assert all(set(e) == {"host", "rule", "port", "plant"} for e in entries)
    assert {e["host"] for e in entries} <= names
    assert [e for e in entries if e["host"] == "hardened"] == []
    # sm-gw plants only ShangMi support; what it lacks elsewhere is host hygiene, never a TLS finding
    assert [e["rule"] for e in entries if e["host"] == "sm-gw" and not e["rule"].startswith("hardening.no-")] == []
    # every port named is a planted service of that host
    for e in entries:
        if e["port"] is not None:
            ports = {s.port for s in topo.host(e["host"]).services}
            assert e["port"] in ports, e
    keys = [(e["host"], e["rule"], e["port"]) for e in entries]
    assert len(keys) == len(set(keys))
    assert sorted(r for h, r, p in keys if h == "pump") == sorted([
        "crypto.cleartext.telnet", "crypto.cleartext.ftp", "crypto.cleartext.http-admin",
        "crypto.cleartext.no-starttls",
        "hardening.risky-port", "hardening.risky-port", "hardening.anonymous-ftp",
        "medical.device.cleartext-service", "medical.device.cleartext-service", "medical.device.default-login",
        "hardening.http-version-disclosure"])


def test_sm_responder_unit() -> None:
    """The fake ShangMi responder's byte-level behaviour, without the network."""
    import importlib.util
    import struct

    spec = importlib.util.spec_from_file_location("sm_responder", compose.LAB_DIR / "hosts/sm-gw/sm_responder.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from tests.lab.tls_hello import client_hello

    def suite(server_hello: bytes) -> int:
        sid_len = server_hello[9 + 2 + 32]
        return struct.unpack_from("!H", server_hello, 9 + 2 + 32 + 1 + sid_len)[0]

    tls13 = mod.respond(client_hello(0x0303, [0x00C6, 0x1301], tls13=True))
    assert tls13[0] == 22 and tls13[5] == 2
    assert suite(tls13) == 0x00C6
    tlcp = mod.respond(client_hello(0x0101, [0xE013], tls13=False))
    assert tlcp[:3] == b"\x16\x01\x01" and tlcp[5] == 2
    assert suite(tlcp) == 0xE013
    assert mod.respond(client_hello(0x0303, [0x1301, 0xC02F], tls13=True)) == b"\x15\x03\x03\x00\x02\x02\x28"
