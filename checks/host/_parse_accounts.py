"""Account metadata from /etc/passwd, /etc/shadow and lastlog.

Password hashes never leave the host: the awk programs below run ON the host and print, per account,
only whether the field is locked and the hash's algorithm prefix ($1$, $6$, $y$, ...), "empty", "none",
"des" or "unknown" - never the salt or the hash. The parsers re-check that shape and drop anything else.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

MAX_ACCOUNTS = 2000

# alg(field) -> "L:<alg>" when locked (leading ! or *), ":<alg>" otherwise. Prefix capped at 12 chars.
_ALG = ('function alg(h,  n, l) { l = ""; '
        'while (substr(h, 1, 1) == "!" || substr(h, 1, 1) == "*") { l = "L"; h = substr(h, 2) } '
        'if (h == "") return l ":" (l == "" ? "empty" : "none"); '
        'if (h == "x") return l ":x"; '
        'if (substr(h, 1, 1) == "$") { n = index(substr(h, 2), "$"); '
        'if (n > 0 && n <= 12) return l ":" substr(h, 1, n + 1); return l ":unknown" } '
        'if (length(h) == 13) return l ":des"; return l ":unknown" } ')
PASSWD_CMD = ("awk -F: '" + _ALG + 'NF >= 7 { print $1 ":" alg($2) ":" $3 ":" $4 ":" $6 ":" $7 }'
              "' /etc/passwd")
SHADOW_CMD = ("awk -F: '" + _ALG + 'NF >= 2 { print $1 ":" alg($2) ":" $3 ":" $4 ":" $5 ":" $6 ":" $7 ":" $8 }'
              "' /etc/shadow")

_PREFIX = re.compile(r"^(empty|none|x|des|unknown|\$[A-Za-z0-9]{1,10}\$)$")
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._@-]{0,63}\$?$")
NON_INTERACTIVE = ("nologin", "false", "sync", "halt", "shutdown", "true")


def _alg(locked: str, alg: str) -> tuple[bool, str] | None:
    if locked not in ("", "L") or not _PREFIX.match(alg):
        return None          # not the shape our awk prints: never keep it (it could be a hash)
    return locked == "L", alg


def _num(s: str) -> int | None:
    s = s.strip()
    return int(s) if re.fullmatch(r"-?\d{1,9}", s) else None


def interactive(shell: str) -> bool:
    base = shell.rsplit("/", 1)[-1]
    return bool(shell) and base not in NON_INTERACTIVE


def parse_passwd_meta(text: str) -> list[dict[str, Any]]:
    """Lines `user:L|:alg:uid:gid:home:shell` -> accounts (no GECOS: it often holds a person's name)."""
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) != 7 or not _USER.match(parts[0]):
            continue
        a = _alg(parts[1], parts[2])
        uid, gid = _num(parts[3]), _num(parts[4])
        if a is None or uid is None:
            continue
        out.append({"user": parts[0], "uid": uid, "gid": gid, "home": parts[5][:256], "shell": parts[6][:256],
                    "interactive": interactive(parts[6]), "passwd_field": a[1], "passwd_locked": a[0]})
        if len(out) >= MAX_ACCOUNTS:
            break
    return out


def parse_shadow_meta(text: str) -> list[dict[str, Any]]:
    """Lines `user:L|:alg:lastchg:min:max:warn:inactive:expire` -> per-account hash metadata.

    Dates are days since 1970-01-01 as shadow(5) stores them; empty fields are None.
    """
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) != 9 or not _USER.match(parts[0]):
            continue
        a = _alg(parts[1], parts[2])
        if a is None:
            continue
        locked, alg = a
        out.append({"user": parts[0], "locked": locked, "algorithm": alg,
                    "empty": alg == "empty" and not locked,
                    "last_change": _num(parts[3]), "min_days": _num(parts[4]), "max_days": _num(parts[5]),
                    "warn_days": _num(parts[6]), "inactive_days": _num(parts[7]), "expire": _num(parts[8])})
        if len(out) >= MAX_ACCOUNTS:
            break
    return out


_LASTLOG_DATE = re.compile(r"([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2} [+-]\d{4} \d{4})\s*$")


def parse_lastlog(text: str) -> dict[str, dt.datetime | None]:
    """`lastlog` output -> {user: time of last login, or None for "**Never logged in**"}."""
    out: dict[str, dt.datetime | None] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if not parts or not _USER.match(parts[0]):
            continue
        if "**Never logged in**" in line:
            out[parts[0]] = None
            continue
        m = _LASTLOG_DATE.search(line)
        if not m:
            continue
        try:
            out[parts[0]] = dt.datetime.strptime(re.sub(r"\s+", " ", m.group(1)), "%a %b %d %H:%M:%S %z %Y")
        except ValueError:
            continue
        if len(out) >= MAX_ACCOUNTS:
            break
    return out
