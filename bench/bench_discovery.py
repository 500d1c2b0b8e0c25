"""Benchmark: discovery of the lab with today's hospital port lists against the lists before issue 17, and nmap's
own UDP scan of the UDP list beside ours; wall clock per round, medians and ratios.

    python bench/bench_discovery.py                 # the lab must be up (tcmscan lab up), as root (raw sockets)
    python bench/bench_discovery.py --rounds 3

What is timed, per round:
- ours, now:    scan_services() for every hospital host of the lab, DISCOVERY_WORKERS at a time as `tcmscan scan`
                runs it (scanner/engine/scan.py), with baselines/knowledge/hospital_ports.yaml as it is;
- ours, before: the same with the port lists of BEFORE (read from git: 47 TCP ports, UDP 69/161/623) and its
                four workers, i.e. what discovery did before issue 17 grew the lists;
- nmap -sU:     `nmap -sU -Pn -n -T4 --max-retries 1 -p <today's UDP list>` over the same hosts in one run (the
                peer for the UDP part), and which UDP ports each side reports open.
Issue 17: "Discovery must not get slower than today on the lab: measure it."  Traffic goes only to the lab.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.manager import check_reachable_only_in_lab  # noqa: E402
from lab.topology import load  # noqa: E402
from scanner.engine import discovery  # noqa: E402
from scanner.engine.scan import DISCOVERY_WORKERS  # noqa: E402

BEFORE = "2f9769f"          # main before issue 17's port lists were merged
BEFORE_WORKERS = 4          # scanner/engine/scan.py's discovery pool at BEFORE


def lists_before() -> dict[str, list[int]]:
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:baselines/knowledge/hospital_ports.yaml"],
                          capture_output=True, text=True, check=True).stdout
    k = yaml.safe_load(text)
    return {"tcp": list(k["tcp"]), "udp": list(k["udp"]), "no_version_probe": list(k["no_version_probe"])}


def discover_all(hosts: list[tuple[str, bool, list[int]]], workers: int) -> tuple[float, dict[str, list[str]]]:
    def one(h: tuple[str, bool, list[int]]) -> tuple[str, list[str]]:
        address, fragile, hl7 = h
        found = discovery.scan_services(address, raw=True, fragile=fragile, hl7_ports=hl7)
        return address, sorted(f"{s.port}/{s.proto}" for s in found)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        seen = dict(pool.map(one, hosts))
    return time.monotonic() - t0, seen


def nmap_udp(addresses: list[str], udp: list[int]) -> tuple[float, dict[str, dict[int, str]]]:
    t0 = time.monotonic()
    out = subprocess.run([discovery.nmap_binary(), "-sU", "-Pn", "-n", "-T4", "--max-retries", "1", "-oX", "-",
                          "-p", ",".join(map(str, udp)), *addresses], capture_output=True, text=True, check=True)
    took = time.monotonic() - t0
    states: dict[str, dict[int, str]] = {}
    for host in ET.fromstring(out.stdout).iter("host"):
        addr = host.find("address").get("addr")
        states[addr] = {int(p.get("portid")): p.find("state").get("state") for p in host.iter("port")}
    return took, states


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not discovery.privileged():
        print("bench_discovery: needs root (raw sockets: -sS and -sU, as a lab scan runs)", file=sys.stderr)
        return 2
    check_reachable_only_in_lab()
    topo = load()
    hosts = [(h.address, h.fragile, list(h.extra.get("inventory", {}).get("hl7", {}).get("ports", [])))
             for h in topo.hospital]
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(topo.subnet) for a, _f, _h in hosts)
    now_lists = discovery.hospital_ports()
    before = lists_before()
    print(f"{len(hosts)} lab hosts, {BEFORE_WORKERS} then {DISCOVERY_WORKERS} at a time; TCP list {len(before['tcp'])} -> {len(now_lists['tcp'])} "
          f"ports, UDP {before['udp']} -> {now_lists['udp']}")
    times: dict[str, list[float]] = {"before": [], "now": [], "nmap -sU": []}
    seen_now: dict[str, list[str]] = {}
    for r in range(args.rounds):
        with mock.patch.object(discovery, "hospital_ports", lambda: before):
            t, _ = discover_all(hosts, BEFORE_WORKERS)
        times["before"].append(t)
        t, seen_now = discover_all(hosts, DISCOVERY_WORKERS)
        times["now"].append(t)
        t, udp_states = nmap_udp([a for a, _f, _h in hosts], now_lists["udp"])
        times["nmap -sU"].append(t)
        print(f"round {r + 1}: before {times['before'][-1]:.1f} s, now {times['now'][-1]:.1f} s, "
              f"nmap -sU {times['nmap -sU'][-1]:.1f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian over {args.rounds} rounds: before {med['before']:.1f} s, now {med['now']:.1f} s, "
          f"now/before {med['now'] / med['before']:.2f}; nmap -sU alone {med['nmap -sU']:.1f} s")
    print("\nUDP ports open, ours (now) vs nmap -sU:")
    for address, _f, _h in hosts:
        ours = [p for p in seen_now.get(address, []) if p.endswith("/udp")]
        theirs = {p: s for p, s in udp_states.get(address, {}).items() if s != "closed"}
        if ours or theirs:
            print(f"  {address:<12} ours {', '.join(ours) or '-':<20} nmap {theirs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
