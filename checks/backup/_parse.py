"""Pure parsers for what backup.catalogue reads from a host: job texts, restic/borg catalogues, checksum
manifests, restore-test records. Inputs are untrusted (a host under audit); every parser is bounded and
returns a plain result or a `Problem` with the reason, never raises on bad input."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from checks.backup import _redact

MAX_PARSE = 4 * 1024 * 1024     # bytes of one catalogue we look at (the SSH session caps output at 4 MiB too)
MAX_ITEMS = 100_000             # snapshots/archives/manifest lines looked at
MAX_COMMAND = 300               # characters of a job command kept in an observation


def redact(text: str, limit: int | None = MAX_COMMAND) -> str:
    """Secrets in a job's text become *** (the table: baselines/knowledge/secret_options.yaml)."""
    return _redact.redact(text, limit)


@dataclass
class Problem:
    """Why something could not be read: becomes a "not assessed" note in the observation."""
    reason: str


# ------------------------------------------------------------------ time

def parse_time(value: Any, tz_offset: str = "+0000") -> dt.datetime | None:
    """ISO time from restic (nanoseconds, Z or offset) or borg (naive local time) as aware UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 64:
        return None
    s = value.strip().replace("Z", "+00:00")
    m = re.match(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(\.\d+)?([+-]\d{2}:?\d{2})?$", s)
    if not m:
        try:
            d = dt.datetime.fromisoformat(s)
        except ValueError:
            return None
    else:
        frac = (m.group(2) or "")[:7]          # Python takes at most microseconds
        try:
            d = dt.datetime.fromisoformat(m.group(1).replace(" ", "T") + frac + (m.group(3) or ""))
        except ValueError:
            return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_tz(tz_offset))
    return d.astimezone(dt.UTC)


def _tz(offset: str) -> dt.timezone:
    m = re.match(r"^([+-])(\d{2}):?(\d{2})$", offset or "")
    if not m:
        return dt.UTC
    delta = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return dt.timezone(-delta if m.group(1) == "-" else delta)


def iso(d: dt.datetime | None) -> str | None:
    return None if d is None else d.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def epoch_iso(value: str | float | None) -> str | None:
    try:
        return iso(dt.datetime.fromtimestamp(float(value), dt.UTC))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# ------------------------------------------------------------------ restic / borg catalogues

@dataclass
class Catalogue:
    count: int
    newest: str | None                      # ISO UTC of the newest snapshot/archive
    encryption: str | None = None           # borg: mode from the catalogue
    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


def restic_snapshots(text: str) -> Catalogue | Problem:
    """`restic snapshots --json`: a JSON array of snapshots with `time`, `hostname`, `paths`."""
    if len(text) >= MAX_PARSE:
        return Problem(f"catalogue larger than {MAX_PARSE // 1048576} MiB: not parsed")
    try:
        doc = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return Problem("restic snapshots output is not JSON (corrupt, truncated or an unknown restic version)")
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        return Problem("restic snapshots output is not a JSON list (unknown restic version?)")
    newest: dt.datetime | None = None
    hosts: set[str] = set()
    paths: set[str] = set()
    count = 0
    for snap in doc[:MAX_ITEMS]:
        if not isinstance(snap, dict) or "time" not in snap:
            return Problem("restic snapshot entries lack 'time' (unknown restic version?)")
        t = parse_time(snap.get("time"))
        if t is None:
            return Problem(f"unreadable snapshot time {str(snap.get('time'))[:40]!r}")
        count += 1
        newest = t if newest is None or t > newest else newest
        if isinstance(snap.get("hostname"), str):
            hosts.add(snap["hostname"][:64])
        for p in snap.get("paths") or []:
            if isinstance(p, str) and len(paths) < 50:
                paths.add(p[:256])
    return Catalogue(count=count, newest=iso(newest), encryption="repository", hosts=sorted(hosts)[:20],
                     paths=sorted(paths))


def borg_list(text: str, tz_offset: str = "+0000") -> Catalogue | Problem:
    """`borg list --json REPO`: {"archives": [{"time"|"start": naive local ISO}], "encryption": {"mode"}}."""
    if len(text) >= MAX_PARSE:
        return Problem(f"catalogue larger than {MAX_PARSE // 1048576} MiB: not parsed")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return Problem("borg list output is not JSON (corrupt, truncated or an unknown borg version)")
    if not isinstance(doc, dict) or not isinstance(doc.get("archives"), list):
        return Problem("borg list output has no 'archives' list (unknown borg version?)")
    newest: dt.datetime | None = None
    count = 0
    for a in doc["archives"][:MAX_ITEMS]:
        if not isinstance(a, dict):
            return Problem("borg archive entry is not an object")
        t = parse_time(a.get("time") or a.get("start"), tz_offset)
        if t is None:
            return Problem(f"unreadable archive time {str(a.get('time'))[:40]!r}")
        count += 1
        newest = t if newest is None or t > newest else newest
    enc = doc.get("encryption")
    mode = enc.get("mode") if isinstance(enc, dict) and isinstance(enc.get("mode"), str) else None
    return Catalogue(count=count, newest=iso(newest), encryption=mode[:40] if mode else None)


def borg_config(text: str) -> dict[str, Any]:
    """The few fields we read from a borg repository's `config` (the key itself is never read out)."""
    out: dict[str, Any] = {}
    for line in text.splitlines()[:200]:
        m = re.match(r"^\s*(version|append_only|id|key_present)\s*=\s*(\S*)", line)
        if m:
            out[m.group(1)] = m.group(2)[:80]
    return out


# ------------------------------------------------------------------ checksum manifests

_HASH_LEN = {32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}
_MANIFEST_LINE = re.compile(r"^\\?([0-9a-fA-F]{32,128}) [ *](.+)$")
_BSD_LINE = re.compile(r"^(MD5|SHA1|SHA224|SHA256|SHA384|SHA512) \((.+)\) = ([0-9a-fA-F]{32,128})$")


def manifest_entries(text: str) -> tuple[str | None, list[str]] | Problem:
    """(algorithm, file names) from a coreutils or BSD-style checksum file."""
    parsed = manifest_lines(text)
    return parsed if isinstance(parsed, Problem) else (parsed[0], [name for name, _ in parsed[1]])


def manifest_lines(text: str) -> tuple[str | None, list[tuple[str, str]]] | Problem:
    """(algorithm, [(file name, its checksum line)]): the lines are handed back to `sha256sum -c` unchanged."""
    algo: str | None = None
    names: list[tuple[str, str]] = []
    for line in text.splitlines()[:MAX_ITEMS]:
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        m = _MANIFEST_LINE.match(line)
        if m and len(m.group(1)) in _HASH_LEN:
            a, name = _HASH_LEN[len(m.group(1))], m.group(2)
        else:
            b = _BSD_LINE.match(line)
            if not b:
                return Problem(f"not a checksum line: {line[:60]!r}")
            a, name = b.group(1).lower(), b.group(2)
        if algo and a != algo:
            return Problem("mixed checksum algorithms in one manifest")
        algo = a
        names.append((name[:512], line))
    if not names:
        return Problem("manifest has no entries")
    return algo, names


def check_output(text: str) -> dict[str, list[str]]:
    """`sha256sum -c` output lines (`name: OK`, `name: FAILED`, `name: FAILED open or read`)."""
    res: dict[str, list[str]] = {"ok": [], "failed": [], "missing": []}
    for line in text.splitlines()[:MAX_ITEMS]:
        name, sep, verdict = line.rpartition(": ")
        if not sep:
            continue
        verdict = verdict.strip()
        if verdict == "OK":
            res["ok"].append(name[:256])
        elif verdict == "FAILED":
            res["failed"].append(name[:256])
        elif verdict.startswith("FAILED open or read"):
            res["missing"].append(name[:256])
    return res


# ------------------------------------------------------------------ restore-test records

def restore_tests(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Our documented record (docs/checks/backup.md): a JSON list of {date, set, result, by}.

    Returns (valid records, problems); a malformed entry is reported, not guessed."""
    problems: list[str] = []
    if len(text) >= MAX_PARSE:
        return [], ["restore-test record too large"]
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return [], ["restore-test record is not JSON"]
    if not isinstance(doc, list):
        return [], ["restore-test record is not a JSON list"]
    out = []
    for i, r in enumerate(doc[:1000]):
        if not isinstance(r, dict):
            problems.append(f"entry {i} is not an object")
            continue
        t = parse_time(r.get("date")) or _date_only(r.get("date"))
        result = r.get("result")
        if t is None or result not in ("ok", "failed"):
            problems.append(f"entry {i}: needs an ISO 'date' and 'result' ok|failed")
            continue
        out.append({"date": iso(t), "set": str(r.get("set", ""))[:200], "result": result,
                    "by": str(r.get("by", ""))[:100]})
    return out, problems[:20]


def _date_only(value: Any) -> dt.datetime | None:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.datetime.fromisoformat(value + "T00:00:00+00:00")
        except ValueError:
            return None
    return None


# ------------------------------------------------------------------ jobs

@dataclass
class JobInfo:
    tools: list[str]
    restic_repos: list[str]
    borg_repos: list[str]
    remote_destinations: list[str]
    password_files: list[str]
    local_paths: list[str]


_ASSIGN = re.compile(r"^\s*(?:export\s+|Environment=\"?)?([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|'[^']*'|\S*)")
_REMOTE_HOSTPATH = re.compile(r"^(?:[\w.+-]+@)?([\w.-]+|\[[0-9a-fA-F:.]+\]):(?!//)")


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def job_info(text: str, tools: list[str], restic_remote_prefixes: list[str]) -> JobInfo:
    """What a job (cron line plus the scripts and env files it names) backs up to, from its text alone.

    Shell variables assigned in the text (`X=...`, `export X=...`, systemd `Environment=X=...`) are
    substituted once; anything more dynamic stays unresolved and is not guessed."""
    text = text[:MAX_PARSE]
    env: dict[str, str] = {}
    for line in text.splitlines()[:5000]:
        m = _ASSIGN.match(line)
        if m:
            env[m.group(1)] = m.group(2).strip("\"'")

    def sub(s: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), s)

    found_tools: set[str] = set()
    restic: list[str] = []
    borg: list[str] = []
    remote: list[str] = []
    pwfiles: list[str] = []
    local: list[str] = []
    for key in ("RESTIC_REPOSITORY",):
        if key in env:
            restic.append(sub(env[key]))
    if "BORG_REPO" in env:
        borg.append(sub(env["BORG_REPO"]))
    if "RESTIC_PASSWORD_FILE" in env:
        pwfiles.append(sub(env["RESTIC_PASSWORD_FILE"]))
    for line in text.splitlines()[:5000]:
        words = [sub(w) for w in _words(line)]
        # a quoted command (ExecStart=/bin/sh -c '...', su -c "...") is read as words too
        words += [sub(x) for w in words if any(c in w for c in " \t") for x in _words(w)]
        for i, w in enumerate(words):
            prog = w.rsplit("/", 1)[-1]
            if prog in tools:
                found_tools.add(prog)
            if w.startswith("/") and len(local) < 100:
                local.append(w.rstrip("/"))
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if prog == "restic" or "restic" in found_tools:
                if w in ("-r", "--repo") and nxt:
                    restic.append(nxt)
                elif w.startswith("--repo="):
                    restic.append(w.split("=", 1)[1])
                elif w in ("-p", "--password-file") and nxt:
                    pwfiles.append(nxt)
                elif w.startswith("--password-file="):
                    pwfiles.append(w.split("=", 1)[1])
            if "::" in w and not w.startswith("-"):
                borg.append(w.split("::", 1)[0])
        progs = [w.rsplit("/", 1)[-1] for w in words]
        for tool in ("rsync", "scp", "rclone"):
            if tool in progs:
                for w in words[progs.index(tool) + 1:]:
                    if w.startswith("-"):
                        continue
                    if w.startswith("rsync://") or (_REMOTE_HOSTPATH.match(w) and not w.startswith("/")):
                        remote.append(w)
    restic = _uniq(restic)
    borg = _uniq(b for b in borg if b)
    for r in restic:
        if any(r.startswith(p) for p in restic_remote_prefixes):
            remote.append(r)
    for b in borg:
        if b.startswith("ssh://") or (_REMOTE_HOSTPATH.match(b) and not b.startswith("/")):
            remote.append(b)
    return JobInfo(sorted(found_tools), restic, borg, _uniq(remote), _uniq(pwfiles), _uniq(local))


def _uniq(items: Any) -> list[str]:
    seen: list[str] = []
    for i in items:
        if i not in seen:
            seen.append(i)
    return seen[:50]


def remote_host(dest: str) -> str | None:
    """The host part of a remote destination (sftp:user@host:/p, rest:https://host:8000/, user@host:/p)."""
    d = re.sub(r"^(sftp|rest|s3|b2|azure|gs|swift|rclone):", "", dest)
    if d != dest and "://" not in d and not _REMOTE_HOSTPATH.match(d):
        return d.split("/", 1)[0] or None          # s3:host/bucket
    m = re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)", d)
    if m:
        return m.group(1).strip("[]")
    m = _REMOTE_HOSTPATH.match(d)
    return m.group(1).strip("[]") if m else None


def matches_any(name: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)
