"""Benchmark: our tls.scan against sslyze and testssl.sh on the same endpoints in one run; medians and ratios.

    python bench/bench_tls.py                         # the lab's TLS endpoints (lab must be up)
    python bench/bench_tls.py --target 127.0.0.1:4433 --rounds 5 --skip-testssl
    python bench/bench_tls.py --testssl-on his        # testssl.sh (≈100 s/endpoint) on one endpoint only

What is timed, per endpoint:
- ours: one full tls.scan attempt through the runner (all versions SSLv2..TLS 1.3, all suites, RFC 8998,
  TLCP, certificate parsed and its chain checked), in a warm process (imports and knowledge tables loaded
  once, as in a scan of many hosts);
- sslyze: its Python API with the six cipher-suite scan commands and certificate_info (the same ground);
- testssl.sh (Debian package): `testssl.sh --quiet --color 0 -p -E -S` (protocols, per-protocol ciphers,
  certificate) on one endpoint unless --skip-testssl.
Traffic goes only to the given loopback or lab addresses.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.core.models import Asset, AttemptSpec, Service
from scanner.engine.runner import execute_attempt
from scanner.sdk.context import RunEnv

LAB_TLS = {"his": "10.77.0.10", "portal": "10.77.0.40", "hardened": "10.77.0.50", "sm-gw": "10.77.0.60"}
ALLOWED = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.77.0.0/24")]


def allowed(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    return any(ip in n for n in ALLOWED)


def run_ours(host: str, port: int) -> tuple[float, str]:
    asset = Asset(address=host, name="", cls="server", services=[Service(port=port, name="https")])
    spec = AttemptSpec(scan_id="bench", check_id="tls.scan", asset=asset.to_dict(), port=port, timeout=60)
    t = time.monotonic()
    res = execute_attempt(spec, RunEnv(scope=[f"{host}/32"]))
    took = time.monotonic() - t
    return took, res.status if res.status == "completed" else f"{res.status}:{res.reason}"


def run_sslyze(host: str, port: int) -> tuple[float, str]:
    from sslyze import ScanCommand, Scanner, ServerNetworkLocation, ServerScanRequest

    cmds = {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES, ScanCommand.TLS_1_0_CIPHER_SUITES,
            ScanCommand.TLS_1_1_CIPHER_SUITES, ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
            ScanCommand.CERTIFICATE_INFO}
    t = time.monotonic()
    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(server_location=ServerNetworkLocation(hostname=host, port=port),
                                           scan_commands=cmds)])
    status = next(iter(scanner.get_results())).scan_status.name
    return time.monotonic() - t, status.lower()


def run_testssl(host: str, port: int) -> tuple[float, str]:
    exe = shutil.which("testssl") or shutil.which("testssl.sh")
    if not exe:
        return float("nan"), "testssl.sh not installed (Debian package testssl.sh)"
    t = time.monotonic()
    p = subprocess.run([exe, "--quiet", "--color", "0", "--warnings", "off", "-p", "-E", "-S", f"{host}:{port}"],
                       capture_output=True, timeout=900)
    return time.monotonic() - t, f"exit {p.returncode}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help="host:port (loopback or lab only); default the lab's TLS hosts")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-testssl", action="store_true")
    ap.add_argument("--testssl-on", default="", help="the one endpoint (lab name or host:port) testssl.sh runs on")
    args = ap.parse_args(argv)
    targets = {}
    for t in args.target or [f"{n}={a}:443" for n, a in LAB_TLS.items()]:
        name, _, hp = t.rpartition("=")
        host, _, port = hp.rpartition(":")
        targets[name or hp] = (host, int(port))
    for host, _port in targets.values():
        if not allowed(host):
            ap.error(f"{host}: only loopback and the lab (10.77.0.0/24) may be benchmarked")
    testssl_on = args.testssl_on or next(iter(targets))

    # warm up: imports, registry and knowledge tables, the trust store (a scan pays this once, not per host)
    first = next(iter(targets.values()))
    cold, _ = run_ours(*first)
    run_sslyze(*first)

    rows = []
    for name, (host, port) in targets.items():
        o = [run_ours(host, port) for _ in range(args.rounds)]
        s = [run_sslyze(host, port) for _ in range(args.rounds)]
        mo, ms = statistics.median(x[0] for x in o), statistics.median(x[0] for x in s)
        mt, tstatus = float("nan"), "skipped"
        if not args.skip_testssl and name == testssl_on:
            mt, tstatus = run_testssl(host, port)
        rows.append((name, mo, o[-1][1], ms, s[-1][1], mt, tstatus))

    print(f"tls.scan vs sslyze vs testssl.sh, median of {args.rounds} rounds (testssl: 1 run); "
          f"our first (cold) attempt {cold:.3f} s")
    print(f"{'endpoint':<12}{'ours s':>9}{'sslyze s':>10}{'ours/sslyze':>13}{'testssl s':>11}{'ours/testssl':>14}  status")
    for name, mo, so, ms, ss, mt, ts in rows:
        rt = f"{mo / mt:.4f}" if mt == mt else "-"
        tt = f"{mt:.1f}" if mt == mt else "-"
        print(f"{name:<12}{mo:>9.3f}{ms:>10.3f}{mo / ms:>13.3f}{tt:>11}{rt:>14}  ours={so} sslyze={ss} testssl={ts}")
    all_o = statistics.median(r[1] for r in rows)
    all_s = statistics.median(r[3] for r in rows)
    print(f"{'ALL':<12}{all_o:>9.3f}{all_s:>10.3f}{all_o / all_s:>13.3f}   target: ours/sslyze <= 0.5")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
