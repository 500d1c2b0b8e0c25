"""Table, JSON and CSV renderings of findings, observations and attempts: the one finding shape and its CSV
rows, used by the terminal, the report, SARIF and notifications alike."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from scanner.core.models import Finding, Observation

# The one shape of a finding outside the program: the CLI's JSON, the report's findings, SARIF properties and
# (projected) notifications, job summaries and diffs all use these keys and nothing else.
FINDING_FIELDS = ("fingerprint", "rule_id", "check_id", "address", "port", "severity", "status", "title_zh",
                  "title_en", "area", "clauses", "evidence", "evidence_key", "remediation", "basis", "capability",
                  "waiver", "risk")
# The short form: a projection of the same dict. Never evidence (it can quote a default password).
FINDING_BRIEF_FIELDS = ("fingerprint", "rule_id", "address", "port", "severity", "title_zh", "title_en")
# The one CSV column list (`tcmscan findings --format csv` and the report's findings.csv): the canonical dict
# flattened for spreadsheets, plus the asset's name beside its address.
CLAUSE_KEYS = ("tcm2024", "gbt22239", "gbt39786")
FINDING_CSV_FIELDS = ("fingerprint", "address", "host_name", "port", "rule_id", "check_id", "area", "severity",
                      "status", "risk_level", "risk_level_zh", "risk_R", "A", "T", "V", "L", "F", "risk_formula",
                      "title_zh", "title_en", *(f"clause_{k}" for k in CLAUSE_KEYS), "evidence", "evidence_key",
                      "remediation_zh", "remediation_en", "basis", "capability", "waiver_owner", "waiver_reason",
                      "waiver_expires")
# Spreadsheet programs execute cells that start with these; host-controlled text must not.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What a target sends must not drive the terminal or a viewer: C0 controls (ESC starts CSI/OSC sequences, OSC 8
# links, OSC 52 clipboard writes; bare CR and backspace overwrite what was printed), DEL, C1 controls (\x9b is a
# one-byte CSI), bidirectional overrides and isolates (U+202E shows text reversed), invisible format characters,
# line/paragraph separators, lone surrogates (unprintable) and Unicode tag characters.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                    "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]")
# Spreadsheets cap a cell at 32,767 characters and split or drop longer ones: clip well below.
CSV_CELL_MAX = 32000


def finding_json(f: Finding) -> dict[str, Any]:
    """The canonical dict of a finding, risk included as stored (None only before it is graded)."""
    d = f.to_dict()
    return {k: d[k] for k in FINDING_FIELDS}


def finding_brief(f: Finding) -> dict[str, Any]:
    d = finding_json(f)
    return {k: d[k] for k in FINDING_BRIEF_FIELDS}


def finding_csv_row(d: dict[str, Any], host_name: str = "") -> dict[str, Any]:
    """A canonical finding dict as one CSV row (raw values; findings_csv neutralises and clips them)."""
    r, wv = d["risk"] or {}, d["waiver"] or {}

    def two(k: str) -> str:
        return "" if k not in r else f"{r[k]:.2f}"

    return {"fingerprint": d["fingerprint"], "address": d["address"], "host_name": host_name, "port": d["port"],
            "rule_id": d["rule_id"], "check_id": d["check_id"], "area": d["area"], "severity": d["severity"],
            "status": d["status"], "risk_level": r.get("level_en", ""), "risk_level_zh": r.get("level_zh", ""),
            "risk_R": two("R"), "A": r.get("A"), "T": r.get("T"), "V": r.get("V"), "L": two("L"), "F": two("F"),
            "risk_formula": r.get("formula", ""), "title_zh": d["title_zh"], "title_en": d["title_en"],
            **{f"clause_{k}": d["clauses"].get(k, "") for k in CLAUSE_KEYS}, "evidence": d["evidence"],
            "evidence_key": d["evidence_key"], "remediation_zh": d["remediation"].get("zh", ""),
            "remediation_en": d["remediation"].get("en", ""), "basis": d["basis"], "capability": d["capability"],
            "waiver_owner": wv.get("owner", ""), "waiver_reason": wv.get("reason", ""),
            "waiver_expires": wv.get("expires", "")}


def findings_csv(findings: list[dict[str, Any]], host_names: dict[str, str] | None = None, *,
                 bom: bool = False) -> str:
    """Canonical finding dicts as CSV with FINDING_CSV_FIELDS; every cell neutralised and clipped. `bom` for a
    file: spreadsheet programs in zh-CN locales read UTF-8 CSV as GBK without it."""
    names = host_names or {}
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(FINDING_CSV_FIELDS)
    for d in findings:
        row = finding_csv_row(d, names.get(d["address"], ""))
        w.writerow([csv_cell(row[k]) for k in FINDING_CSV_FIELDS])
    return ("\ufeff" if bom else "") + buf.getvalue()


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` safe for a terminal, a table cell or one line of a message: every UNSAFE character is shown as a
    visible escape (\\x1b, \\x9b, \\u202e, \\U000e0041), the rest left alone. The one function every terminal
    path uses; `keep_newlines` for a CSV cell, where a line break is data."""
    if keep_newlines:
        return "\n".join(printable(part) for part in text.split("\n"))
    return UNSAFE.sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    n = ord(m.group())
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _json_escape(m: re.Match[str]) -> str:
    # A JSON string escape decodes to the same character: the output stays lossless and the terminal inert.
    n = ord(m.group())
    if n < 0x20:
        return m.group()      # json.dumps escaped those inside strings; outside them this is its own indentation
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def observation_json(o: Observation) -> dict[str, Any]:
    return {"check_id": o.check_id, "address": o.address, "port": o.port, "key": o.key, "data": o.data}


def dumps(value: Any) -> str:
    """JSON for a terminal or a file, UNSAFE characters written as \\u escapes (json.dumps leaves C1 controls and
    bidi overrides raw); other characters (Chinese) as they are."""
    return UNSAFE.sub(_json_escape, json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str))


def csv_safe(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text.startswith(FORMULA_PREFIXES):
        text = "'" + text
    return text


def csv_cell(value: Any) -> str:
    """One spreadsheet cell: JSON for structures, control characters escaped, formula-neutralised, clipped with the
    full length said."""
    if value is None:
        return ""
    text = csv_safe(printable(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                              sort_keys=True, default=str),
                              keep_newlines=True))
    if len(text) > CSV_CELL_MAX:
        text = text[:CSV_CELL_MAX] + f"…[truncated, {len(text)} characters; full value in report.json]"
    return text


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[printable(str(c)) if c is not None else "" for c in r] for r in rows]
    headers = [printable(h) for h in headers]
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
