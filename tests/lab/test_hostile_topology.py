"""The hostile hosts in lab/topology.yaml and the configuration `lab up` writes for them (no root, no lab)."""

from __future__ import annotations

import copy
import json

import pytest

from lab import manager
from lab.pki import LabPKI
from lab.topology import TopologyError, load, parse
from tests.checks.hostile_loopback import program
from tests.lab.test_topology import raw

TARPIT_PORTS = [21, 22, 23, 25, 80, 443, 104, 2575, 3306, 6379]


def test_hostile_hosts_as_contracted() -> None:
    topo = load()
    got = {h.name: (h.address, [(s.port, s.proto, s.behaviour) for s in h.services]) for h in topo.hosts if h.hostile}
    assert got == {
        "tarpit": ("10.77.0.70", [(p, "tcp", "silent") for p in TARPIT_PORTS]),
        "drip": ("10.77.0.71", [(p, "tcp", "drip") for p in TARPIT_PORTS]),
        "flood": ("10.77.0.72", [(p, "tcp", "flood") for p in TARPIT_PORTS if p != 25]),
        "reset": ("10.77.0.73", [(p, "tcp", "reset") for p in TARPIT_PORTS]),
        "garble": ("10.77.0.74", [(22, "tcp", "ssh-garbage-kexinit"), (80, "tcp", "http-redirect-loop"),
                                  (443, "tcp", "tls-malformed-hello"), (8080, "tcp", "http-huge-headers"),
                                  (104, "tcp", "dicom-malformed-pdu"), (2575, "tcp", "mllp-no-end-block"),
                                  (161, "udp", "snmp-wrong-types")]),
        "absurd": ("10.77.0.75", [(22, "tcp", "ssh-endless-kexinit"), (80, "tcp", "http-gzip-bomb"),
                                  (443, "tcp", "tls-absurd-certs"), (8080, "tcp", "http-endless-chunked"),
                                  (104, "tcp", "dicom-absurd-length"), (2575, "tcp", "mllp-flood"),
                                  (161, "udp", "snmp-wrong-value-types")]),
        "oddssh": ("10.77.0.76", [(22, "tcp", "")]),
        "flapper": ("10.77.0.77", [(22, "tcp", "")]),
    }
    assert topo.host("flapper").flap == {"first_up": 20.0, "up": 6.0, "down": 6.0}
    assert [h.name for h in topo.hosts if h.flap] == ["flapper"]
    assert all(h.plants == {} and not h.fragile for h in topo.hosts if h.hostile)


def test_every_behaviour_is_the_programs_and_every_one_is_used() -> None:
    mod = program()
    used = {(s.proto, s.behaviour) for h in load().hosts for s in h.services if s.behaviour}
    assert used == {("tcp", b) for b in mod.TCP_BEHAVIOURS} | {("udp", b) for b in mod.UDP_BEHAVIOURS}
    with pytest.raises(ValueError, match="port 7/tcp: unknown behaviour 'echo'"):
        mod.validate({"listeners": [{"port": 7, "proto": "tcp", "behaviour": "echo"}]})
    with pytest.raises(ValueError, match="port 161/udp: unknown behaviour 'silent'"):
        mod.validate({"listeners": [{"port": 161, "proto": "udp", "behaviour": "silent"}]})
    assert mod.snmp_answer("snmp-wrong-types", b"\x30\x03garbage") is None


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["hosts"][0]["services"][0].update(behaviour="silent"), "without `hostile: true`"),
    (lambda d: d["hosts"][0].update(flap={"first_up": 1, "up": 1, "down": 1}), "without `hostile: true`"),
    (lambda d: next(h for h in d["hosts"] if h["name"] == "flapper").update(flap={"up": 1, "down": 1}),
     "flap needs first_up, up, down"),
    (lambda d: next(h for h in d["hosts"] if h["name"] == "flapper").update(flap={"first_up": 1, "up": 0, "down": 1}),
     "each > 0 s"),
])
def test_bad_hostile_entries_rejected(mutate, message: str) -> None:
    data = copy.deepcopy(raw())
    mutate(data)
    with pytest.raises(TopologyError, match=message):
        parse(data)


def test_lab_up_writes_the_programs_configuration(tmp_path) -> None:
    topo = load()
    pki = LabPKI(tmp_path / "pki")
    for name, sshd in (("absurd", False), ("flapper", True), ("tarpit", False)):
        upper = tmp_path / name
        manager._hostile_files(topo, topo.host(name), upper, pki)
        config = json.loads((upper / "usr/local/lib/lab/hostile.json").read_text())
        host = topo.host(name)
        assert config["listeners"] == [{"port": s.port, "proto": s.proto, "behaviour": s.behaviour}
                                       for s in host.services if s.behaviour]
        assert (config["address"], config["prefix"], config["flap"]) == (host.address, 24, host.flap or None)
        assert (upper / "etc/ssh/sshd_not_to_be_run").exists() == (not sshd)
        assert ("tls" in config) == (name == "absurd")
    assert (tmp_path / "absurd/etc/hostile/tls/chain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 50
    assert oct((tmp_path / "absurd/etc/hostile/tls/key.pem").stat().st_mode & 0o777) == "0o600"


def test_status_lists_hostile_hosts_apart() -> None:
    st = manager.status()
    assert "tarpit" not in [h["name"] for h in st["hosts"]]
    flapper = next(h for h in st["hostile"] if h["name"] == "flapper")
    assert flapper == {"name": "flapper", "address": "10.77.0.77", "services": ["ssh/22"],
                       "flap": {"first_up": 20.0, "up": 6.0, "down": 6.0}}
