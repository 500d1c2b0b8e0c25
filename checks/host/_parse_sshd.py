"""sshd configuration: `sshd -T` output (the effective configuration) and, when that cannot run, the
configuration files themselves (first value wins, Include spliced in place, Match blocks kept apart)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

MAX_LINES = 3000
# keywords that may appear several times and accumulate (sshd -T prints one line per value)
LIST_KEYS = {"allowusers", "denyusers", "allowgroups", "denygroups", "listenaddress", "port", "hostkey",
             "acceptenv", "setenv", "subsystem", "include", "authorizedkeysfile", "permitopen", "permitlisten",
             "hostcertificate", "authenticationmethods"}
WILDCARD_LISTEN = {"0.0.0.0", "::", "[::]", "*"}


def _split(line: str) -> tuple[str, str] | None:
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    m = re.match(r"([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+)(.*)$", line)
    if not m:
        return (line.lower()[:64], "") if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", line) else None
    return m.group(1).lower()[:64], m.group(2).strip()[:1024]


def parse_sshd_t(text: str) -> dict[str, Any]:
    """`sshd -T` lines (`keyword value`, lower-case keywords) -> {keyword: value or [values]}."""
    out: dict[str, Any] = {}
    for line in text.splitlines()[:MAX_LINES]:
        kv = _split(line)
        if kv is None:
            continue
        k, v = kv
        if k in LIST_KEYS:
            out.setdefault(k, [])
            if isinstance(out[k], list) and len(out[k]) < 200:
                out[k].extend(v.split() if k in ("allowusers", "denyusers", "allowgroups", "denygroups") else [v])
        elif k not in out and len(out) < 400:
            out[k] = v
    return out


def parse_sshd_config(files: dict[str, str], main: str = "/etc/ssh/sshd_config") -> dict[str, Any]:
    """Global options (first value wins, as sshd reads them) and Match blocks of sshd_config.

    `files`: path -> text of the main file and of every file an Include may name.
    Returns {"options": {...}, "match_blocks": [{"criteria": str, "options": {...}}]}.
    """
    options: dict[str, Any] = {}
    blocks: list[dict[str, Any]] = []
    state = {"block": None}

    def feed(path: str, depth: int) -> None:
        text = files.get(path)
        if text is None or depth > 4:
            return
        for line in text.splitlines()[:MAX_LINES]:
            kv = _split(line)
            if kv is None:
                continue
            k, v = kv
            if k == "include":
                for pattern in v.split():
                    if not pattern.startswith("/"):
                        pattern = "/etc/ssh/" + pattern
                    for p in sorted(f for f in files if fnmatch.fnmatchcase(f, pattern)):
                        feed(p, depth + 1)
                continue
            if k == "match":
                if len(blocks) < 100:
                    state["block"] = {"criteria": v, "options": {}, "file": path}
                    blocks.append(state["block"])
                continue
            target = state["block"]["options"] if state["block"] is not None else options
            if k in LIST_KEYS:
                vals = v.split() if k in ("allowusers", "denyusers", "allowgroups", "denygroups") else [v]
                # list keywords accumulate, except Port/ListenAddress... which also accumulate in sshd
                target.setdefault(k, [])
                if len(target[k]) < 200:
                    target[k].extend(vals)
            elif k not in target and len(target) < 400:
                target[k] = v

    feed(main, 0)
    return {"options": options, "match_blocks": blocks}


def match_blocks(files: dict[str, str], main: str = "/etc/ssh/sshd_config") -> list[dict[str, Any]]:
    return parse_sshd_config(files, main)["match_blocks"]


def with_defaults(options: dict[str, Any], defaults: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Options plus documented defaults for keywords not set; also the list of keywords defaulted."""
    out = dict(options)
    assumed = []
    for k, v in defaults.items():
        if k not in out:
            out[k] = list(v) if isinstance(v, list) else v
            assumed.append(k)
    return out, sorted(assumed)


def derive(options: dict[str, Any], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Facts that follow from the options: can a password log in, is a key required, source limits."""
    yes = lambda k: str(options.get(k, "")).lower() == "yes"  # noqa: E731
    kbd = yes("kbdinteractiveauthentication") or yes("challengeresponseauthentication")
    password_login = yes("passwordauthentication") or (kbd and yes("usepam"))
    methods = options.get("authenticationmethods", "any")
    if isinstance(methods, list):
        methods = " ".join(methods)
    methods = str(methods).strip() or "any"
    key_required = methods != "any" and all("publickey" in alt.split(",") for alt in methods.split())
    limits: list[str] = []
    for u in options.get("allowusers", []) or []:
        if "@" in u:
            limits.append(f"AllowUsers {u}")
    for a in options.get("listenaddress", []) or []:
        host = _listen_host(a)
        if host and host not in WILDCARD_LISTEN:
            limits.append(f"ListenAddress {a}")
    for b in blocks:
        if re.search(r"(?i)\baddress\b", b.get("criteria", "")):
            limits.append(f"Match {b['criteria']}")
    interval = _int(options.get("clientaliveinterval"))
    count = _int(options.get("clientalivecountmax"))
    return {"password_login": password_login, "key_required": key_required, "authentication_methods": methods,
            "permit_root_login": str(options.get("permitrootlogin", "")).lower() or None,
            "source_limits": limits[:50],
            "client_alive_interval": interval, "client_alive_count_max": count,
            # ClientAliveCountMax 0 disables the disconnect (OpenSSH >= 8.2): no timeout then
            "client_alive_timeout": interval * count if interval and count else None}


def _listen_host(value: str) -> str:
    v = value.split()[0] if value.split() else ""
    if v.startswith("["):
        return v[: v.find("]") + 1] if "]" in v else v
    if v.count(":") == 1:
        return v.split(":", 1)[0]
    return v


def _int(v: Any) -> int | None:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None
