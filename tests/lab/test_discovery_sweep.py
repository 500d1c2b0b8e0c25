"""Host discovery of a whole segment: our ARP sweep (scanner/engine/discovery.py arp_sweep) finds on the lab's
/24 exactly the hosts and MACs nmap -sn finds there, the scanning host's own address apart. Lab addresses only."""

from __future__ import annotations

import ipaddress
import subprocess
import xml.etree.ElementTree as ET

import pytest

from scanner.engine.discovery import find_live_hosts, interface_ipv4, on_link_routes

pytestmark = pytest.mark.lab


def nmap_ping_sweep(subnet: str) -> dict[str, str]:
    out = subprocess.run(["nmap", "-sn", "-n", "-oX", "-", subnet], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    found = {}
    for host in ET.fromstring(out).iter("host"):
        addrs = {a.get("addrtype"): a.get("addr") for a in host.iter("address")}
        found[addrs["ipv4"]] = (addrs.get("mac") or "").lower()
    return found


def test_the_arp_sweep_finds_what_nmap_finds(lab) -> None:
    subnet = ipaddress.ip_network(lab["subnet"])
    iface = next(i for net, i in on_link_routes() if net == subnet)
    own = interface_ipv4(iface)
    # the hostile host that comes and goes is up or down by the clock: not a fact two sweeps can share
    flapping = {h["address"] for h in lab.get("hostile", []) if h.get("flap")}
    ours = find_live_hosts([str(a) for a in subnet.hosts() if str(a) not in flapping], raw=True)
    theirs = nmap_ping_sweep(str(subnet))
    assert theirs.pop(own) == "", "nmap lists the scanning host itself, without a MAC"
    for a in flapping:
        theirs.pop(a, None)
    assert {a: (f.how, f.mac) for a, f in ours.items() if f.alive} == {a: ("arp", m) for a, m in theirs.items()}
    # every lab host answered, and nothing else did
    assert set(theirs) == ({h["address"] for h in lab["hosts"]}
                           | {h["address"] for h in lab.get("hostile", [])}) - flapping


def test_on_link_routes_reads_the_kernels_table(tmp_path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"        # default via 10.0.0.1
        "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"        # 10.0.0.0/16
        "tcmlab0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")    # 10.77.0.0/24
    assert on_link_routes(str(table)) == [(ipaddress.IPv4Network("10.77.0.0/24"), "tcmlab0"),
                                          (ipaddress.IPv4Network("10.0.0.0/16"), "eth0")]
    assert on_link_routes(str(tmp_path / "missing")) == []
