"""One `tcmscan scan` run for a benchmark: its wall time, its memory (sampled while it runs) and its scan id.
Shared by bench_lab_scan.py and bench_scale.py."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids += [int(k) for k in task.read_text().split()]
        except (OSError, ValueError):
            continue
    return kids


def watch_memory(pid: int, stop: threading.Event, out: dict[str, int]) -> None:
    """Every 0.2 s: the scan process's own peak RSS (VmHWM) and the memory of the process and its children (nmap)
    together, as PSS (shared pages counted once, split between their users); the largest sum seen."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out["own"] = max(out.get("own", 0), int(line.split()[1]))
        except OSError:
            return
        out["with_children"] = max(out.get("with_children", 0),
                                   _pss_kib(pid) + sum(_pss_kib(k) for k in _children(pid)))
        out["nmap_at_once"] = max(out.get("nmap_at_once", 0), len(_children(pid)))
        stop.wait(0.2)


def run_tcmscan(args: list[str], who: str) -> tuple[float, dict[str, int], str]:
    """`tcmscan scan ARGS --quiet`: (wall seconds, memory peaks in KiB as watch_memory keeps them, scan id). Exits
    with one line naming `who` if the scan fails (exit other than 0 or 1: findings at or above --fail-on)."""
    cmd = [shutil.which("tcmscan") or "tcmscan", "scan", *args, "--quiet"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peaks = threading.Event(), {}
    watcher = threading.Thread(target=watch_memory, args=(proc.pid, stop, peaks), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    stop.set()
    watcher.join()
    if proc.returncode not in (0, 1) or not out.strip():
        raise SystemExit(f"{who}: our scan failed ({proc.returncode}): {err.strip()[-300:]}")
    return wall, peaks, out.strip().splitlines()[-1]
