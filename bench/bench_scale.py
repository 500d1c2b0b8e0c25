"""Benchmark: how the cost of a full unauthenticated scan grows with the number of hosts, on the lab's scale mode
(lab/scale.py: N addresses in one namespace, each with OpenSSH, nginx HTTP and HTTPS); wall time and peak memory
(RSS of tcmscan and its children, nmap included) at 50, 100 and 250 hosts, and the cost per host.

    python -m lab scale up --hosts 250             # as root
    python bench/bench_scale.py [--sizes 50,100,250]
    python -m lab scale down

Issue 18's targets: 250 hosts within 5 minutes, peak memory under 250 MB, cost growing linearly or better.
No inventory, no credentials (the scale hosts have none); every check that applies runs. Traffic goes only to the
scale namespace: every address must route via its veth, or the benchmark refuses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scan_process import run_tcmscan  # noqa: E402

from lab import scale  # noqa: E402
from lab.manager import route_device  # noqa: E402


def scan(hosts: list[str], db: Path) -> tuple[float, dict[str, int], str]:
    return run_tcmscan(["--db", str(db), f"{hosts[0]}-{hosts[-1]}", "--scope", str(scale.SUBNET)], "bench_scale")


def phases(db: Path, scan_id: str) -> str:
    import sqlite3

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT message FROM events WHERE scan_id = ? AND message LIKE 'phase %' ORDER BY id",
                           [scan_id]).fetchall()
    return "; ".join(m.removeprefix("phase ") for (m,) in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,100,250", help="host counts, comma-separated (default 50,100,250)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    st = scale.status()
    if not st["running"] or len(st["hosts"]) < max(sizes):
        print(f"bench_scale: the scale lab is not up with {max(sizes)} hosts "
              f"(python -m lab scale up --hosts {max(sizes)})", file=sys.stderr)
        return 2
    strays = [a for a in st["hosts"][:max(sizes)] if route_device(a) != scale.HOST_LINK]
    if strays:
        print(f"bench_scale: {strays[0]} does not route via {scale.HOST_LINK}: refusing", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    rows = []
    for n in sizes:
        db = tmp / f"scan-{n}.db"
        wall, rss, scan_id = scan(st["hosts"][:n], db)
        own, total = rss.get("own", 0) / 1024, rss.get("with_children", 0) / 1024
        rows.append((n, wall, own, total))
        print(f"{n:4d} hosts: wall {wall:6.1f} s, {wall / n:5.2f} s/host; peak memory: tcmscan {own:4.0f} MiB, "
              f"with its nmap children {total:4.0f} MiB PSS (up to {rss.get('nmap_at_once', 0)} at once) "
              f"({phases(db, scan_id)})", flush=True)
    (n0, w0, _, _), (n1, w1, _, _) = rows[0], rows[-1]
    print(f"growth {n0} -> {n1} hosts: x{n1 / n0:.1f} hosts, x{w1 / w0:.2f} time "
          f"({'linear or better' if w1 / w0 <= n1 / n0 else 'worse than linear'}); {n1} hosts in {w1:.0f} s "
          f"(target <= 300 s); peak tcmscan {max(r[2] for r in rows):.0f} MiB, with nmap "
          f"{max(r[3] for r in rows):.0f} MiB (target < 250)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
