"""Firewall rules, pending updates, processes, packages and file permissions from command output."""

from __future__ import annotations

import re
from typing import Any

MAX_LINES = 20000


def nft_ruleset(text: str) -> dict[str, Any]:
    """`nft list ruleset`: tables, chains, rules, and the policy of input-hook base chains."""
    tables = chains = rules = 0
    input_policy: str | None = None
    in_chain = False
    hook = ""
    for raw in text.splitlines()[:MAX_LINES]:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"table\s", line):
            tables += 1
        elif re.match(r"chain\s", line):
            chains += 1
            in_chain, hook = True, ""
        elif line == "}":
            in_chain = False
        elif in_chain:
            m = re.match(r"type\s+\w+\s+hook\s+(\w+).*?(?:policy\s+(\w+))?\s*;?\s*$", line)
            if m:
                hook = m.group(1)
                if hook == "input":
                    input_policy = (m.group(2) or "accept").lower()
            elif not line.startswith(("policy ", "comment ", "devices ")):
                rules += 1
    return {"tool": "nft", "tables": tables, "chains": chains, "rules": rules, "input_policy": input_policy}


def iptables_rules(text: str) -> dict[str, Any]:
    """`iptables -S`: appended rules and the INPUT policy."""
    rules = 0
    policy: str | None = None
    chains = 0
    for line in text.splitlines()[:MAX_LINES]:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "-P":
            chains += 1
            if parts[1] == "INPUT":
                policy = parts[2].lower()
        elif parts[:1] == ["-A"]:
            rules += 1
        elif parts[:1] == ["-N"]:
            chains += 1
    return {"tool": "iptables", "tables": None, "chains": chains, "rules": rules, "input_policy": policy}


_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) ([^\[)]*?)(?: \[[^\]]*\])?\)")


def apt_simulation(text: str) -> list[dict[str, Any]]:
    """`apt-get -s upgrade` Inst lines -> [{package, installed, candidate, origin, security}]."""
    out = []
    for line in text.splitlines()[:MAX_LINES]:
        m = _INST.match(line)
        if not m:
            continue
        origin = m.group(4).strip()
        out.append({"package": m.group(1)[:128], "installed": (m.group(2) or "")[:64],
                    "candidate": m.group(3)[:64], "origin": origin[:128],
                    "security": "security" in origin.lower()})
        if len(out) >= 2000:
            break
    return out


def security_lists(listing: str) -> list[str]:
    """Index files of /var/lib/apt/lists that come from a security archive."""
    return sorted({n for n in listing.split() if "security" in n.lower() and n.endswith("Packages")})[:50]


def process_names(text: str) -> list[str]:
    """`ps -eo comm=` (or /proc/*/comm) -> sorted unique names, kernel threads ([kworker/0:1]) dropped."""
    names = set()
    for line in text.splitlines()[:MAX_LINES]:
        n = line.strip()
        if n and not n.startswith("[") and len(n) <= 64:
            names.add(n)
    return sorted(names)[:1000]


def dpkg_installed(text: str) -> list[str]:
    """`dpkg-query -W -f='${Package}\\t${Status}\\n' ...` -> packages whose status is installed."""
    out = []
    for line in text.splitlines()[:MAX_LINES]:
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].strip().endswith(" installed") and "not-installed" not in parts[1]:
            out.append(parts[0].strip()[:128])
    return sorted(set(out))


def stat_line(text: str) -> dict[str, Any] | None:
    """`stat -c '%a %U %G'` -> {mode (int), mode_octal, owner, group}; `ls -ln`-style fallback too."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    m = re.fullmatch(r"([0-7]{3,4}) (\S+) (\S+)", line)
    if m:
        mode = int(m.group(1), 8)
    else:
        m2 = re.match(r"[-dlcbps]([rwxsStT-]{9})[.+@]?\s+\d+\s+(\S+)\s+(\S+)", line)
        if not m2:
            return None
        mode = _symbolic_mode(m2.group(1))
        m = m2
    return {"mode": mode & 0o7777, "mode_octal": f"{mode & 0o7777:04o}", "owner": m.group(2)[:64],
            "group": m.group(3)[:64]}


def _symbolic_mode(s: str) -> int:
    mode = 0
    for i, (ch, bit) in enumerate(zip(s, (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1), strict=True)):
        if ch in "rwx" or (ch in "sSt T" and i % 3 == 2 and ch in "st"):
            mode |= bit
    return mode
