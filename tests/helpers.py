"""Helpers for tests that drive the real `tcmscan` command (subprocess, real SQLite file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def tcmscan(*args: str, db: Path | str | None = None, check: bool = False, timeout: float = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "scanner.cli"]
    if db is not None:
        cmd += ["--db", str(db)]
    e = {**os.environ, **(env or {})}
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT)
    if check and p.returncode not in (0, 1):
        raise AssertionError(f"tcmscan {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def scan(targets: list[str], *, scope: list[str], db: Path, checks: list[str] | None = None,
         inventory: str | None = None, credentials: str | None = None, known_hosts: Path | None = None,
         extra: list[str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Run a scan through the CLI; return (scan id, findings as JSON)."""
    args = ["scan", *targets, "--quiet"]
    for s in scope:
        args += ["--scope", s]
    for c in checks or []:
        args += ["--checks", c]
    if inventory:
        args += ["--inventory", inventory]
    if credentials:
        args += ["--credentials", credentials]
    args += ["--known-hosts", str(known_hosts or Path(db).with_suffix(".known_hosts"))]
    p = tcmscan(*args, *(extra or []), db=db, check=True)
    scan_id = p.stdout.strip().splitlines()[-1]
    return scan_id, findings(db, scan_id)


def findings(db: Path, scan_id: str | None = None) -> list[dict[str, Any]]:
    p = tcmscan("findings", *([scan_id] if scan_id else []), "--format", "json", db=db, check=True)
    return json.loads(p.stdout)


def observations(db: Path, scan_id: str | None = None) -> list[dict[str, Any]]:
    p = tcmscan("observations", *([scan_id] if scan_id else []), "--format", "json", db=db, check=True)
    return json.loads(p.stdout)


def triples(found: list[dict[str, Any]], lab_status: dict[str, Any]) -> set[tuple[str, str, int | None]]:
    """Findings as (host name, rule, port), the shape of lab/expected-findings.yaml."""
    name = {h["address"]: h["name"] for h in lab_status["hosts"]}
    return {(name.get(f["address"], f["address"]), f["rule_id"], f["port"]) for f in found}


def expected(rule_prefixes: tuple[str, ...] = ("",), hosts: tuple[str, ...] | None = None
             ) -> set[tuple[str, str, int | None]]:
    """Ground truth from lab/expected-findings.yaml, filtered by rule prefix and host names."""
    doc = yaml.safe_load((ROOT / "lab" / "expected-findings.yaml").read_text(encoding="utf-8"))
    return {(e["host"], e["rule"], e.get("port")) for e in doc.get("expected") or []
            if e["rule"].startswith(rule_prefixes) and (hosts is None or e["host"] in hosts)}
