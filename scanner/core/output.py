"""Table, JSON and CSV renderings of findings, observations and attempts for the terminal and pipes."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from scanner.core.models import Finding, Observation

FINDING_FIELDS = ("fingerprint", "rule_id", "check_id", "address", "port", "severity", "status", "title_zh",
                  "title_en", "area", "clauses", "evidence", "evidence_key", "remediation", "basis", "capability",
                  "waiver")
# Spreadsheet programs execute cells that start with these; host-controlled text must not.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def finding_json(f: Finding) -> dict[str, Any]:
    d = f.to_dict()
    return {k: d[k] for k in FINDING_FIELDS}


def observation_json(o: Observation) -> dict[str, Any]:
    return {"check_id": o.check_id, "address": o.address, "port": o.port, "key": o.key, "data": o.data}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str)


def csv_safe(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text.startswith(FORMULA_PREFIXES):
        text = "'" + text
    return text


def to_csv(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(fields)
    for r in rows:
        w.writerow(["" if r.get(f) is None else csv_safe(r.get(f)) for f in fields])
    return buf.getvalue()


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[str(c) if c is not None else "" for c in r] for r in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(_pad(h, widths[i]) for i, h in enumerate(headers)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(_pad(c, widths[i]) for i, c in enumerate(r)) for r in cells]
    return "\n".join(lines)


def _width(s: str) -> int:
    # CJK characters take two terminal columns
    return sum(2 if ord(c) > 0x2E80 else 1 for c in s)


def _pad(s: str, width: int) -> str:
    return s + " " * (width - _width(s))
