"""Version ordering (upstream and Debian dpkg rules) and matching a product/version banner against the
known-vulnerable table (baselines/knowledge/vulnerable_versions.yaml). Shared by services.versions and
dicom.association."""

from __future__ import annotations

import re
from typing import Any

LOW_CONFIDENCE = ("banner match; Debian backports fixes: confidence low, confirm with an authenticated "
                  "package check")
DEBIAN = re.compile(r"\bDebian[- ](?P<rev>[0-9][0-9A-Za-z.+~]*)")



# ------------------------------------------------------------------ version ordering

def _tokens(v: str) -> list[tuple[Any, ...]]:
    """'9.2p1' -> [(0,1,'9'),(0,1,'2'),(1,'p'),(0,1,'1')]: numbers before letters at the same position, as upstreams
    mean it ('1.3.5' < '1.3.5a', '8.5' < '8.5p1')."""
    # A number compares by its length without leading zeros, then its digits: int() refuses past 4300 digits,
    # and a banner may say anything.
    return [(0, len(t.lstrip("0")), t.lstrip("0")) if t.isdigit() else (1, t)
            for t in re.findall(r"[0-9]+|[A-Za-z]+", v)]


def upstream_lt(a: str, b: str) -> bool:
    return _tokens(a) < _tokens(b)


def in_range(version: str, ranges: list[dict[str, str]]) -> bool:
    for r in ranges:
        lo, hi = str(r.get("introduced") or ""), str(r.get("fixed") or "")
        if (not lo or not upstream_lt(version, lo)) and (not hi or upstream_lt(version, hi)):
            return True
    return False


def _dpkg_order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _dpkg_part_cmp(a: str, b: str) -> int:
    """dpkg's verrevcmp (lib/dpkg/version.c): alternating non-digit / digit runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _dpkg_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _dpkg_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = (a[i] > b[j]) - (a[i] < b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def dpkg_cmp(a: str, b: str) -> int:
    """Compare two Debian versions [epoch:]upstream[-revision]: -1, 0, 1."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "")
        # isdigit() is True for "\u00b2", which int() refuses; an epoch past 9 digits is no dpkg epoch
        return int(epoch) if epoch.isascii() and epoch.isdigit() and len(epoch) < 10 else 0, up, rev
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _dpkg_part_cmp(ua, ub) or _dpkg_part_cmp(ra, rb)


# ------------------------------------------------------------------ matching

def parse_banner_version(version: str) -> tuple[str, str, str]:
    """nmap version text -> (upstream, debian revision, debian release key like 'debian12')."""
    upstream = version.split()[0] if version.split() else ""
    m = DEBIAN.search(version)
    rev = m.group("rev") if m else ""
    rel = re.search(r"deb(\d+)u", rev)
    return upstream, rev, f"debian{rel.group(1)}" if rel else ""


def product_key(table: dict[str, Any], product: str) -> str:
    p = product.lower().strip()
    for key, spec in (table.get("products") or {}).items():
        if any(p == m or p.startswith(m + " ") for m in spec.get("match", [])):
            return str(key)
    return ""


def match_vulnerable(table: dict[str, Any], product: str, version: str) -> dict[str, Any]:
    key = product_key(table, product)
    upstream, rev, release = parse_banner_version(version)
    out: dict[str, Any] = {"product": product, "product_key": key, "version": version, "upstream": upstream,
                           "distro_revision": rev, "matches": [], "suppressed": []}
    if not key or not upstream:
        return out
    for e in table.get("entries") or []:
        if e.get("product") != key or not in_range(upstream, e.get("affected") or []):
            continue
        fixed = (e.get("fixed_in") or {}).get(release) if release else None
        if fixed:
            epoch = fixed.split(":", 1)[0] + ":" if ":" in fixed else ""
            if dpkg_cmp(f"{epoch}{upstream}-{rev}", fixed) >= 0:
                out["suppressed"].append({"cve": e["cve"], "reason": f"Debian {rev} >= fixed {fixed}"})
                continue
        out["matches"].append({"cve": e["cve"], "cvss": float(e["cvss"]), "title": e.get("title", ""),
                               "source": e.get("source", ""), "confidence": "low",
                               "note": LOW_CONFIDENCE if not fixed else
                               f"banner shows Debian {rev}, older than the fixed {fixed}; {LOW_CONFIDENCE}"})
    return out
