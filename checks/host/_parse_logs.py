"""Log forwarding targets (rsyslog, syslog-ng, audisp-remote) and logrotate retention."""

from __future__ import annotations

import fnmatch
import re
import shlex
from typing import Any

MAX_LINES = 5000
PERIOD_DAYS = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
                     for line in text.splitlines()[:MAX_LINES])


_LEGACY = re.compile(r"^\s*[^\s#$:][^\s]*\s+[-]?(@@?)(?:\([^)]*\))?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+)(?::(\d+))?",
                     re.MULTILINE)
_ACTION = re.compile(r"action\s*\((.*?)\)", re.IGNORECASE | re.DOTALL)
_PARAM = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _port(text: str | None, default: int = 514) -> int | None:
    """A port as written, the default when none is, None for anything else: isdigit() is True for "\u00b2" and
    for 5000 digits, which int() refuses."""
    if text is None:
        return default
    return int(text) if text.isdecimal() and len(text) < 6 else None


def rsyslog_targets(path: str, text: str) -> list[dict[str, Any]]:
    """`*.* @@host:port` (TCP), `@host` (UDP), and action(type="omfwd"|"omrelp" target=...)."""
    body = _strip_comments(text)
    out: list[dict[str, Any]] = []
    for m in _LEGACY.finditer(body):
        out.append({"daemon": "rsyslog", "target": m.group(2).strip("[]"), "port": _port(m.group(3)),
                    "protocol": "tcp" if m.group(1) == "@@" else "udp", "file": path})
    for m in _ACTION.finditer(body):
        params = {k.lower(): v for k, v in _PARAM.findall(m.group(1))}
        kind = params.get("type", "").lower()
        if kind in ("omfwd", "omrelp") and params.get("target"):
            out.append({"daemon": "rsyslog", "target": params["target"][:255], "port": _port(params.get("port")),
                        "protocol": "relp" if kind == "omrelp" else params.get("protocol", "udp").lower()[:8],
                        "file": path})
    return out[:50]


_SYSLOG_NG = re.compile(r"\b(network|tcp6?|udp6?|syslog)\s*\(\s*\"?([A-Za-z0-9_.:\-\[\]]+)\"?", re.IGNORECASE)


def syslog_ng_targets(path: str, text: str) -> list[dict[str, Any]]:
    """Destinations `network("host" ...)`, `tcp("host")`, `udp(...)`, `syslog(...)` inside destination blocks."""
    body = _strip_comments(text)
    out = []
    for block in re.finditer(r"destination\s+\S+\s*\{(.*?)\}\s*;", body, re.DOTALL):
        for m in _SYSLOG_NG.finditer(block.group(1)):
            out.append({"daemon": "syslog-ng", "target": m.group(2).strip("[]"), "port": None,
                        "protocol": m.group(1).lower(), "file": path})
    return out[:50]


def audisp_remote_target(conf: str | None, plugin: str | None) -> list[dict[str, Any]]:
    """auditd's au-remote plug-in: remote_server in audisp-remote.conf, used when the plug-in is active."""
    if not conf or not plugin:
        return []
    active = re.search(r"(?m)^\s*active\s*=\s*yes\b", plugin)
    server = re.search(r"(?m)^\s*remote_server\s*=\s*(\S+)", conf)
    port = re.search(r"(?m)^\s*port\s*=\s*(\d{1,5})", conf)
    if not (active and server):
        return []
    return [{"daemon": "auditd", "target": server.group(1)[:255], "port": int(port.group(1)) if port else 60,
             "protocol": "tcp", "file": "/etc/audit/audisp-remote.conf"}]


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def parse_logrotate(files: dict[str, str], main: str = "/etc/logrotate.conf") -> dict[str, Any]:
    """Global settings and per-log blocks, as logrotate reads them (include spliced in place; a block
    inherits the global settings in force where it appears)."""
    glob: dict[str, Any] = {"rotate": None, "period": None, "maxage": None}
    blocks: list[dict[str, Any]] = []

    def feed(path: str, depth: int) -> None:
        text = files.get(path)
        if text is None or depth > 3:
            return
        current: dict[str, Any] | None = None
        pending_paths: list[str] = []
        script = False
        for raw in text.splitlines()[:MAX_LINES]:
            line = raw.strip()
            if script:
                if line in ("endscript",):
                    script = False
                continue
            if not line or line.startswith("#"):
                continue
            if current is None and "{" in line:
                pending_paths += _tokens(line.split("{", 1)[0])
                current = {**glob, "paths": pending_paths[:50], "file": path}
                pending_paths = []
                rest = line.split("{", 1)[1].strip()
                if rest.startswith("}"):
                    blocks.append(current)
                    current = None
                continue
            if current is not None and line.startswith("}"):
                blocks.append(current)
                current = None
                continue
            toks = _tokens(line)
            if not toks:
                continue
            word = toks[0].lower()
            if word in ("postrotate", "prerotate", "firstaction", "lastaction", "preremove"):
                script = True
                continue
            target = current if current is not None else glob
            if word in PERIOD_DAYS:
                target["period"] = word
            elif word == "rotate" and len(toks) > 1 and re.fullmatch(r"-?\d{1,6}", toks[1]):
                target["rotate"] = int(toks[1])
            elif word == "maxage" and len(toks) > 1 and re.fullmatch(r"\d{1,6}", toks[1]):
                target["maxage"] = int(toks[1])
            elif word == "include" and current is None and len(toks) > 1:
                inc = toks[1].rstrip("/")
                if inc in files:
                    feed(inc, depth + 1)
                else:
                    for p in sorted(f for f in files if f.startswith(inc + "/")):
                        feed(p, depth + 1)
            elif current is None and word.startswith("/"):
                pending_paths += toks   # paths on their own lines before the "{" line
            if len(blocks) >= 300:
                return

    feed(main, 0)
    for b in blocks:
        b["days"] = retention_days(b)
    return {"default": {**glob, "days": retention_days(glob)}, "blocks": blocks}


KEEP_FOREVER = 99999        # days reported for "rotate -1" (old logs never deleted) without maxage


def retention_days(settings: dict[str, Any]) -> float | int | None:
    """rotate x period in days, capped by maxage; None when the period is not time-based."""
    rotate, period = settings.get("rotate"), settings.get("period")
    if rotate is None or period is None:
        return None
    days: float = KEEP_FOREVER if rotate < 0 else rotate * PERIOD_DAYS[period]
    if settings.get("maxage") is not None:
        days = min(days, settings["maxage"])
    return int(days) if float(days).is_integer() else round(days, 2)


def system_log_retention(parsed: dict[str, Any], logs: list[str]) -> dict[str, Any]:
    """Retention of the system/auth logs: the blocks that name them, else the global default."""
    covered = []
    for log in logs:
        for b in parsed["blocks"]:
            if any(fnmatch.fnmatchcase(log, p) for p in b["paths"]):
                covered.append({"log": log, "days": b["days"], "rotate": b["rotate"], "period": b["period"],
                                "maxage": b["maxage"], "file": b["file"]})
                break
    if covered:
        known = [c["days"] for c in covered if c["days"] is not None]
        return {"logs": covered, "effective_days": min(known) if known else None,
                "basis": "logrotate blocks naming the system logs (shortest retention)"}
    return {"logs": [], "effective_days": parsed["default"]["days"],
            "basis": "global logrotate default (no block names the system logs)"}
