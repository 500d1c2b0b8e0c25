"""Benchmark: the whole lab scan (every check family, the lab's inventory and credentials) beside the peer
pipeline an engineer would otherwise run over the same hosts: wall clock, peak memory, ratio, and where our time
goes. Issue 18.

    python bench/bench_lab_scan.py                # as root, with the lab up (python -m lab up)
    python bench/bench_lab_scan.py --no-peers     # ours only: the time profile

Ours: `tcmscan scan <every lab host> --scope <lab subnet> --inventory .. --credentials ..` as a child process
into a fresh database; wall clock and peak RSS (VmHWM of the process, polled). From its database: the wall time
of each phase (the scan's "phase ..." events), attempt time per check (sum and longest), the ten longest
attempts, and per host the sum of its attempts' time (the host cap runs four at a time: a host's sum / 4 is a
floor under the check phase). Then `tcmscan report` of the scan, timed.

Peers, the pipeline of issue 18, one tool after the other on the endpoints our scan found:
  nmap -sn over the lab's hosts; nmap -sV (-sS) with the TCP ports our discovery scans (nmap's top 1000 and the
  hospital list); ssh-audit on every SSH server (its own target list and threads); sslyze on every TLS
  endpoint (one run, its own concurrency); nmap --script dicom-ping on every DICOM port.
Exits 2 when a peer tool is missing (no ratio against nothing), 1 when our scan fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scan_process import run_tcmscan  # noqa: E402

from lab import manager  # noqa: E402
from lab.manager import check_reachable_only_in_lab  # noqa: E402
from scanner.engine.discovery import hospital_ports, top_tcp_ports  # noqa: E402

PEERS = ("nmap", "ssh-audit", "sslyze")


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    return time.monotonic() - t0, p


def run_ours(lab: dict, db: Path) -> tuple[float, float, str]:
    hosts = [h["address"] for h in lab["hosts"]]
    wall, peaks, scan_id = run_tcmscan(["--db", str(db), *hosts, "--scope", lab["subnet"], "--inventory",
                                        lab["inventory"], "--credentials", lab["credentials"]], "bench_lab_scan")
    return wall, peaks.get("own", 0) / 1024, scan_id


def profile(db: Path, scan_id: str) -> dict:
    con = sqlite3.connect(db)
    phases = [m for (m,) in con.execute("SELECT message FROM events WHERE scan_id = ? AND message LIKE 'phase %' "
                                        "ORDER BY id", [scan_id])]
    rows = con.execute("SELECT check_id, address, port, status, duration FROM attempts WHERE scan_id = ?",
                       [scan_id]).fetchall()
    services = con.execute("SELECT address, port, proto, name, tunnel FROM services WHERE scan_id = ?",
                           [scan_id]).fetchall()
    tls_ports = {(a, p) for (a, p) in con.execute(
        "SELECT DISTINCT address, port FROM attempts WHERE scan_id = ? AND check_id = 'tls.scan' AND "
        "status = 'completed'", [scan_id])}
    con.close()
    per_check: dict[str, list[float]] = defaultdict(list)
    per_host: dict[str, float] = defaultdict(float)
    for check, address, _port, _status, duration in rows:
        per_check[check].append(duration or 0.0)
        per_host[address] += duration or 0.0
    return {"phases": phases, "rows": rows, "per_check": per_check, "per_host": per_host,
            "ssh": sorted({(a, p) for a, p, proto, name, _t in services if proto == "tcp" and name == "ssh"}),
            "tls": sorted(tls_ports),
            "dicom": sorted({(a, p) for a, p, proto, name, _t in services if proto == "tcp" and name == "dicom"})}


def run_peers(addresses: list[str], prof: dict, tmp: Path) -> dict[str, float]:
    took: dict[str, float] = {}
    nmap = shutil.which("nmap")
    took["nmap -sn"], _ = timed([nmap, "-sn", "-n", *addresses])
    ports = sorted(set(top_tcp_ports()) | set(hospital_ports()["tcp"]))
    took["nmap -sV"], _ = timed([nmap, "-sS", "-sV", "-Pn", "-n", "-T4", "-p", ",".join(map(str, ports)), *addresses])
    targets = tmp / "ssh-targets.txt"
    targets.write_text("".join(f"{a}:{p}\n" for a, p in prof["ssh"]))
    took[f"ssh-audit ({len(prof['ssh'])} servers)"], _ = timed([shutil.which("ssh-audit"), "-T", str(targets)])
    took[f"sslyze ({len(prof['tls'])} endpoints)"], _ = timed(
        [shutil.which("sslyze"), *(f"{a}:{p}" for a, p in prof["tls"])])
    t = 0.0
    for a, p in prof["dicom"]:
        dt, _ = timed([nmap, "-Pn", "-n", "-p", str(p), "--script", "dicom-ping", a])
        t += dt
    took[f"nmap dicom-ping ({len(prof['dicom'])} ports)"] = t
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-peers", action="store_true", help="our scan and its time profile only")
    args = ap.parse_args()
    missing = [t for t in PEERS if not shutil.which(t)] if not args.no_peers else []
    if missing:
        print(f"bench_lab_scan: peer tool(s) missing: {', '.join(missing)} (scripts/install.sh --test)",
              file=sys.stderr)
        return 2
    lab = manager.status()
    if not lab.get("running"):
        print("bench_lab_scan: the lab is not up (python -m lab up)", file=sys.stderr)
        return 2
    check_reachable_only_in_lab()
    tmp = Path(tempfile.mkdtemp(prefix="bench-lab-scan-"))
    db = tmp / "scan.db"
    wall, rss, scan_id = run_ours(lab, db)
    t_report, rep = timed([shutil.which("tcmscan") or "tcmscan", "report", "--db", str(db), scan_id,
                           "--out", str(tmp / "report")])
    prof = profile(db, scan_id)
    rows = prof["rows"]
    ran = [r for r in rows if r[4]]
    print(f"ours: {len(lab['hosts'])} hosts, {len(rows)} attempts ({len(ran)} ran), wall {wall:.1f} s, "
          f"peak RSS {rss:.0f} MiB; report {t_report:.1f} s"
          + ("" if rep.returncode == 0 else f" (failed: {rep.stderr.strip()[-120:]})"))
    print("  phases: " + "; ".join(p.removeprefix("phase ") for p in prof["phases"]))
    total = sum(r[4] or 0 for r in rows)
    print(f"  attempt time, all attempts: {total:.0f} s")
    print("  by check (sum s, attempts, longest s):")
    for check, ds in sorted(prof["per_check"].items(), key=lambda kv: -sum(kv[1]))[:15]:
        print(f"    {check:<28} {sum(ds):7.1f} {len(ds):5d} {max(ds):7.1f}")
    print("  longest attempts:")
    for check, address, port, status, duration in sorted(rows, key=lambda r: -(r[4] or 0))[:10]:
        print(f"    {duration or 0:6.1f} s  {check:<26} {address}:{port or '-'} {status}")
    print("  hosts by attempt time (sum s):")
    for address, s in sorted(prof["per_host"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {address:<12} {s:7.1f}")
    if args.no_peers:
        return 0
    took = run_peers([h["address"] for h in lab["hosts"]], prof, tmp)
    peer_total = sum(took.values())
    print(f"\npeers: {peer_total:.1f} s in all")
    for k, v in took.items():
        print(f"  {k:<34} {v:7.1f} s")
    print(f"\nratio peers / ours: {peer_total / wall:.1f}x (target >= 15x); ours {wall:.1f} s (target <= 20 s)")
    print(json.dumps({"ours_wall_s": round(wall, 1), "ours_peak_rss_mib": round(rss), "peers_s": round(peer_total, 1),
                      "ratio": round(peer_total / wall, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
