"""Benchmark: our ssh.kex against ssh-audit (`ssh-audit -j`) on the same SSH servers, in one run.

Targets: every SSH server of the lab when it is up (`python -m lab status`), else three real OpenSSH servers
started on loopback with the lab's sshd configurations (core-switch, his, hardened; tests/checks/test_ssh_kex.py).
Prints per-target medians over --rounds runs and the ratio ours / ssh-audit (target: <= 0.5).

    python bench/bench_ssh.py [--rounds 7] [--loopback]

Ours runs in-process, as a scan runs it; ssh-audit runs as its CLI (that includes ~0.1 s of interpreter
start-up, measured and printed separately so the comparison can be read both ways).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks.ssh import kex as sshkex  # noqa: E402
from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv


def ours(address: str, scope: str) -> float:
    asset = Asset(address=address, services=[Service(port=22, name="ssh")])
    ctx = CheckContext(asset=asset, service=asset.services[0], check_id="ssh.kex", env=RunEnv(scope=[scope]),
                       timeout=20, safe_mode=False)
    t = time.perf_counter()
    [obs] = sshkex.run(ctx)
    dt = time.perf_counter() - t
    assert obs.data["kex"] and all("error" not in h for h in obs.data["host_keys"]), obs.data
    return dt


def ssh_audit(address: str) -> float:
    t = time.perf_counter()
    p = subprocess.run([shutil.which("ssh-audit") or "ssh-audit", "-j", address], capture_output=True, timeout=60)
    dt = time.perf_counter() - t
    assert p.stdout.startswith(b"{"), p.stderr[-300:]
    return dt


def lab_targets() -> tuple[list[tuple[str, str]], str] | None:
    try:
        from lab import manager
        st = manager.status()
    except Exception:
        return None
    if not st.get("running") or not st.get("hosts"):
        return None
    return [(h["name"], h["address"]) for h in st["hosts"]
            if any(str(s).startswith("ssh/") for s in h.get("services", []))], st["subnet"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--loopback", action="store_true", help="use loopback sshd servers even if the lab is up")
    a = ap.parse_args()
    if not shutil.which("ssh-audit"):
        sys.exit("pip install ssh-audit")
    procs = []
    found = None if a.loopback else lab_targets()
    if found:
        targets, scope = found
        where = "lab"
    else:
        from tests.checks.test_ssh_kex import CONFIGS, start_sshd
        tmp = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
        targets, scope, where = [], "127.44.5.0/24", "loopback OpenSSH 9.2"
        for address, (label, keys, lines) in CONFIGS.items():
            procs.append(start_sshd(tmp / label, address, keys, lines).proc)
            targets.append((label, address))
    try:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup = time.perf_counter() - t
        print(f"targets: {where}; {a.rounds} rounds each; python start-up {startup * 1000:.0f} ms")
        print(f"{'host':<14}{'ours (s)':>10}{'ssh-audit (s)':>15}{'ratio':>8}")
        all_o, all_s = [], []
        for name, address in targets:
            o = [ours(address, scope) for _ in range(a.rounds)]
            s = [ssh_audit(address) for _ in range(a.rounds)]
            mo, ms = statistics.median(o), statistics.median(s)
            all_o.append(mo)
            all_s.append(ms)
            print(f"{name:<14}{mo:>10.3f}{ms:>15.3f}{mo / ms:>8.2f}")
        mo, ms = statistics.median(all_o), statistics.median(all_s)
        print(f"{'median':<14}{mo:>10.3f}{ms:>15.3f}{mo / ms:>8.2f}   target ratio <= 0.50: "
              f"{'met' if mo / ms <= 0.5 else 'NOT met'}")
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
