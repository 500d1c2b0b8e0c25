"""Benchmark: host discovery of a whole /24 -- ours (scanner/engine/discovery.py find_live_hosts: the ARP sweep on
an attached segment) against `nmap -sn` on the same segment; wall clock per round, medians and the ratio.

    python bench/bench_ping_sweep.py                # the lab must be up (python -m lab up), as root
    python bench/bench_ping_sweep.py --rounds 7

Issue 18: "Discovery of a /24 at least as fast as nmap -sn on the same segment."  Traffic goes only to the lab's
/24 (its bridge is the scanning host's attached segment); both sides must find the same hosts, or no ratio.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import manager  # noqa: E402
from lab.manager import check_reachable_only_in_lab  # noqa: E402
from scanner.engine.discovery import find_live_hosts  # noqa: E402


def nmap_sweep(nmap: str, subnet: str) -> set[str]:
    out = subprocess.run([nmap, "-sn", "-n", "-oX", "-", subnet], capture_output=True, text=True, check=True).stdout
    return {a.get("addr") for h in ET.fromstring(out).iter("host") for a in h.iter("address")
            if a.get("addrtype") == "ipv4" and any(m.get("addrtype") == "mac" for m in h.iter("address"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    nmap = shutil.which("nmap")
    if not nmap:
        print("bench_ping_sweep: peer tool missing: nmap (apt-get install nmap)", file=sys.stderr)
        return 2
    lab = manager.status()
    if not lab.get("running"):
        print("bench_ping_sweep: the lab is not up (python -m lab up)", file=sys.stderr)
        return 2
    check_reachable_only_in_lab()
    subnet = lab["subnet"]
    addresses = [str(a) for a in ipaddress.ip_network(subnet).hosts()]
    ours_t, theirs_t = [], []
    for _ in range(args.rounds):
        t0 = time.monotonic()
        ours = {a for a, f in find_live_hosts(addresses, raw=True).items() if f.alive}
        ours_t.append(time.monotonic() - t0)
        t0 = time.monotonic()
        theirs = nmap_sweep(nmap, subnet)
        theirs_t.append(time.monotonic() - t0)
        flapping = {h["address"] for h in lab.get("hostile", []) if h.get("flap")}     # up or down by the clock
        if (ours ^ theirs) - flapping:
            print(f"bench_ping_sweep: the two sides found different hosts: {sorted(ours ^ theirs)}", file=sys.stderr)
            return 1
    a, b = statistics.median(ours_t), statistics.median(theirs_t)
    print(f"{subnet}: {len(addresses)} addresses, {len(ours)} answer; {args.rounds} rounds, medians")
    print(f"  ours (ARP sweep)  {a:6.2f} s")
    print(f"  nmap -sn          {b:6.2f} s")
    print(f"ratio nmap / ours: {b / a:.2f}x (target >= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
