"""Read-only collection of a host's backup facts with the host's own tools (sh, find, stat, sha256sum,
restic, borg), through any `Shell` (the shared SSH session in a scan; /bin/sh on this machine in tests).

Never starts a backup, restore, prune or check: restic runs only `snapshots` with --no-lock --no-cache,
borg only `list --json --bypass-lock`. Secrets are passed by file name (--password-file, BORG_PASSCOMMAND
`cat FILE`) and never read into our process.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from checks.backup import _parse as parse
from scanner.sdk import CheckError

VERIFY_BUDGET = 64 * 1024 * 1024   # bytes hashed for checksum verification per host, at most
MAX_FILES = 5000                   # file rows read from find
MAX_REPOS = 50
MAX_SCRIPTS = 20                   # job scripts and env files read per host
MAX_CANDIDATES = 400               # paths named by jobs looked at for them
MAX_MANIFEST_ENTRIES = 2000        # entries of one manifest verified


class Shell(Protocol):
    def __call__(self, command: str, timeout: float = 20.0) -> tuple[int, str, bool]: ...


def q(s: str) -> str:
    return shlex.quote(s)


@dataclass
class Raw:
    """Everything read from the host, before it is turned into sets (kept plain for tests)."""
    now: str | None = None
    tz: str = "+0000"
    uid: str = ""
    files: dict[str, str] = field(default_factory=dict)        # job-ish files: path -> text (bounded)
    crontab_root: str = ""
    systemd: bool = False
    timers: str = ""
    found: list[dict[str, Any]] = field(default_factory=list)  # find rows {path,size,mtime,owner,mode}
    repos: list[tuple[str, str]] = field(default_factory=list)  # (tool, path)
    notes: list[str] = field(default_factory=list)


def _strip(root: str, path: str) -> str:
    return path[len(root):] or "/" if root and path.startswith(root) else path


def gather_basics(sh: Shell, root: str = "") -> Raw:
    raw = Raw()
    rc, out, _ = sh("date -u +%s; date +%z; id -u", 10)
    lines = out.split()
    if rc == 0 and len(lines) >= 3:
        raw.now, raw.tz, raw.uid = parse.epoch_iso(lines[0]), lines[1], lines[2]
    # Job definitions: cron (system, per-user spools, run-parts dirs), local systemd units.
    globs = ["/etc/crontab", "/etc/cron.d/*", "/var/spool/cron/crontabs/*", "/var/spool/cron/*",
             "/etc/cron.hourly/*", "/etc/cron.daily/*", "/etc/cron.weekly/*", "/etc/cron.monthly/*",
             "/etc/systemd/system/*.service", "/etc/systemd/system/*.timer"]
    pats = " ".join(f"{q(root)}{g}" for g in globs)
    cmd = (f"for f in {pats}; do [ -f \"$f\" ] || continue; printf '\\036%s\\n' \"$f\"; "
           "head -c 65536 \"$f\" | tr -d '\\000\\036'; echo; done")
    _, out, _ = sh(cmd, 20)
    raw.files = _split_files(out, root)
    rc, out, _ = sh("crontab -l -u root 2>/dev/null", 10)
    raw.crontab_root = out[:65536] if rc == 0 else ""
    rc, out, _ = sh(f"[ -d {q(root)}/run/systemd/system ] && systemctl list-timers --all --no-legend --no-pager "
                    "2>/dev/null | head -n 200", 15)
    raw.systemd, raw.timers = rc == 0, out if rc == 0 else ""
    return raw


def _split_files(out: str, root: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for chunk in out.split("\x1e")[1:]:
        path, _, body = chunk.partition("\n")
        files[_strip(root, path)] = body
    return files


def read_files(sh: Shell, paths: list[str], root: str = "") -> dict[str, str]:
    """Scripts and env files named by jobs (absolute paths, regular files, 64 KiB each, MAX_SCRIPTS of them).

    Most paths a job names are data (/srv/..., /var/backups/...), not files: the host skips those, so the cap
    counts files actually read, not candidates."""
    paths = [p for p in paths if p.startswith("/") and ".." not in p][:MAX_CANDIDATES]
    if not paths:
        return {}
    lst = " ".join(q(root + p) for p in paths)
    cmd = (f"n=0; for f in {lst}; do [ -f \"$f\" ] && [ -r \"$f\" ] || continue; n=$((n+1)); "
           f"[ $n -gt {MAX_SCRIPTS} ] && break; printf '\\036%s\\n' \"$f\"; "
           "head -c 65536 \"$f\" | tr -d '\\000\\036'; echo; done")
    _, out, _ = sh(cmd, 20)
    return _split_files(out, root)


def find_candidates(sh: Shell, roots: list[str], know: dict[str, Any], root: str = "") -> tuple[list[dict], list]:
    """Backup files, manifests and repository configs under the roots (one find, bounded rows)."""
    names = [*know["dump_globs"], *know["manifest_globs"], "config"]
    expr = " -o ".join(f"-name {q(n)}" for n in names)
    dirs = " ".join(q(root + r) for r in roots)
    cmd = (f"for d in {dirs}; do [ -d \"$d\" ] && find \"$d\" -xdev -maxdepth 6 -type f \\( {expr} \\) "
           f"-printf '%p\\t%s\\t%T@\\t%u\\t%m\\n' 2>/dev/null; done | head -n {MAX_FILES}")
    _, out, truncated = sh(cmd, 60)
    rows = []
    seen: set[str] = set()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        if parts[0] in seen:        # a job-named root inside a usual root is found twice
            continue
        seen.add(parts[0])
        try:
            rows.append({"path": _strip(root, parts[0]), "size": int(parts[1]), "mtime": float(parts[2]),
                         "owner": parts[3][:32], "mode": parts[4][:8]})
        except ValueError:
            continue
    configs = [r["path"] for r in rows if r["path"].endswith("/config")][:500]
    repos: list[tuple[str, str]] = []
    if configs:
        lst = " ".join(q(root + c[: -len("/config")]) for c in configs)
        cmd = (f"for d in {lst}; do if [ -d \"$d/keys\" ] && [ -d \"$d/snapshots\" ] && [ -d \"$d/data\" ]; "
               "then printf 'restic\\t%s\\n' \"$d\"; elif head -c 64 \"$d/config\" | grep -q '^\\[repository\\]'; "
               "then printf 'borg\\t%s\\n' \"$d\"; fi; done")
        _, out, _ = sh(cmd, 30)
        for line in out.splitlines():
            tool, _, path = line.partition("\t")
            if tool in ("restic", "borg") and path and (tool, _strip(root, path)) not in repos:
                repos.append((tool, _strip(root, path)))
    return [r for r in rows if not r["path"].endswith("/config")], repos[:MAX_REPOS]


def path_facts(sh: Shell, path: str, root: str = "") -> dict[str, Any]:
    """Owner, mode, immutable/append-only attribute and read-only mount of a backup location."""
    p = q(root + path)
    cmd = (f"stat -c '%U %a' {p} 2>/dev/null; echo \"attr $(lsattr -d {p} 2>/dev/null | cut -d' ' -f1)\"; "
           f"echo \"mnt $(findmnt -n -o OPTIONS --target {p} 2>/dev/null)\"")
    _, out, _ = sh(cmd, 10)
    facts: dict[str, Any] = {"owner": None, "mode": None, "immutable": False, "append_only": False,
                             "read_only_mount": False}
    for line in out.splitlines():
        if line.startswith("attr "):
            flags = line[5:].strip()
            facts["immutable"] = "i" in flags
            facts["append_only"] = "a" in flags
        elif line.startswith("mnt "):
            facts["read_only_mount"] = "ro" in line[4:].strip().split(",")
        elif len(line.split()) == 2 and facts["owner"] is None:
            facts["owner"], facts["mode"] = line.split()
    return facts


def restic_repo(sh: Shell, path: str, password_file: str | None, root: str = "") -> dict[str, Any]:
    """A local restic repository: encrypted by design; newest snapshot from the catalogue when we have the
    password file, else from the mtime of snapshots/ (metadata readable without the key)."""
    p = root + path
    info: dict[str, Any] = {"encrypted": True, "encryption_basis": "restic repositories are always encrypted",
                            "last_backup": None, "last_backup_source": None, "snapshots": None, "notes": []}
    rc, out, _ = sh(f"find {q(p + '/snapshots')} -type f -printf '%T@\\n' 2>/dev/null | sort -n | tail -n 1; "
                    f"find {q(p + '/snapshots')} -type f 2>/dev/null | wc -l", 20)
    lines = out.split()
    meta_newest = parse.epoch_iso(lines[0]) if len(lines) >= 2 else None
    meta_count = int(lines[-1]) if lines and lines[-1].isdigit() else None
    if password_file:
        cmd = (f"timeout 60 restic --no-lock --no-cache --json -r {q(p)} --password-file {q(root + password_file)} "
               "snapshots </dev/null 2>&1")
        rc, out, truncated = sh(cmd, 70)
        if truncated:
            info["notes"].append("restic catalogue larger than the 4 MiB read limit: not parsed")
        elif rc != 0:
            info["notes"].append(f"restic snapshots failed (exit {rc}): {parse.redact(out.strip(), limit=None)[-160:]}")
        else:
            cat = parse.restic_snapshots(out)
            if isinstance(cat, parse.Problem):
                info["notes"].append(cat.reason)
            else:
                info.update(last_backup=cat.newest, last_backup_source="restic snapshots --json",
                            snapshots=cat.count, backed_up_paths=cat.paths)
                return info
    else:
        info["notes"].append("no readable restic password file named by a job or at a well-known place: "
                             "snapshot list not read")
    if meta_count:
        info.update(last_backup=meta_newest, snapshots=meta_count,
                    last_backup_source="mtime of the newest file in snapshots/ (catalogue not read)")
    elif meta_count == 0:
        info.update(snapshots=0, last_backup_source="repository has no snapshots")
    return info


def borg_repo(sh: Shell, path: str, passcommand_file: str | None, tz: str, root: str = "") -> dict[str, Any]:
    p = root + path
    info: dict[str, Any] = {"encrypted": None, "encryption_basis": None, "last_backup": None,
                            "last_backup_source": None, "snapshots": None, "append_only": False, "notes": []}
    # the key line is tested, never printed
    rc, out, _ = sh(f"grep -E '^(version|append_only|id) *=' {q(p + '/config')} 2>/dev/null | head -n 5; "
                    f"grep -qE '^key *= *[^ ]' {q(p + '/config')} 2>/dev/null && echo key_present = 1; "
                    f"ls -t {q(p)} 2>/dev/null | grep -m1 -E '^(integrity|hints|index)\\.' | "
                    f"xargs -r -I{{}} stat -c 'commit %Y' {q(p)}/{{}}", 10)
    cfg = parse.borg_config(out)
    info["append_only"] = cfg.get("append_only") == "1"
    commit = next((ln.split()[1] for ln in out.splitlines() if ln.startswith("commit ") and len(ln.split()) == 2),
                  None)
    if cfg.get("key_present") == "1":
        info.update(encrypted=True, encryption_basis="repository config holds an encrypted key (repokey)")
    env = ("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no BORG_RELOCATED_REPO_ACCESS_IS_OK=no "
           "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=NO ")
    env += (f"BORG_PASSCOMMAND={q('cat ' + q(root + passcommand_file))} " if passcommand_file
            else "BORG_PASSPHRASE= ")
    rc, out, truncated = sh(f"{env}timeout 60 borg list --json --bypass-lock {q(p)} </dev/null 2>/dev/null", 70)
    if rc == 0 and not truncated:
        cat = parse.borg_list(out, tz)
        if isinstance(cat, parse.Problem):
            info["notes"].append(cat.reason)
        else:
            enc = cat.encryption or "unknown"
            info.update(last_backup=cat.newest, snapshots=cat.count, last_backup_source="borg list --json",
                        encrypted=enc not in ("none", "authenticated", "authenticated-blake2", "unknown"),
                        encryption_basis=f"borg encryption mode {enc}")
            return info
    else:
        info["notes"].append("borg list not readable (no passphrase available, or catalogue too large)"
                             if rc != 0 else "borg catalogue larger than the 4 MiB read limit: not parsed")
    if commit:
        info.update(last_backup=parse.epoch_iso(commit), last_backup_source="mtime of the last borg transaction")
    if info["encrypted"] is None:
        info["notes"].append("encryption mode not readable without the passphrase (keyfile or none)")
    return info


def verify_manifest(sh: Shell, manifest: str, budget: list[int], root: str = "") -> dict[str, Any]:
    """Check a manifest against the files next to it, within the remaining byte budget (shared per host).

    An entry is hashed only when stat(2) says it is a regular file: a FIFO would block the reader (the scan
    hangs), a device such as /dev/zero never ends, a socket cannot be read. Those entries are listed under
    `skipped` with the reason, never opened. stat does not open the file; the hashing that follows runs
    under `timeout`, which bounds an entry swapped for a FIFO between the two."""
    m = root + manifest
    d = m.rsplit("/", 1)[0] or "/"
    res: dict[str, Any] = {"path": manifest, "status": None, "algorithm": None, "entries": 0, "failed": [],
                           "missing": [], "skipped": []}
    rc, text, truncated = sh(f"[ -f {q(m)} ] && head -c 1048576 {q(m)}", 10)
    parsed = parse.manifest_lines(text)
    if isinstance(parsed, parse.Problem) or truncated:
        res["status"] = "unreadable"
        res["detail"] = "manifest larger than 1 MiB" if truncated else parsed.reason  # type: ignore[union-attr]
        return res
    algo, entries = parsed
    res.update(algorithm=algo, entries=len(entries))
    if algo not in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"):
        res["status"] = "unreadable"
        return res
    entries = entries[:MAX_MANIFEST_ENTRIES]
    kinds: list[str] = []
    for chunk in _chunks([q(name) for name, _ in entries]):
        _, out, _ = sh(f"cd {q(d)} && for f in {chunk}; do stat -L -c '%s %F' -- \"$f\" 2>/dev/null || echo missing; "
                       "done", 20)
        kinds += out.splitlines()
    if len(kinds) != len(entries):
        res["status"], res["detail"] = "unreadable", "the listed files could not be looked at (stat)"
        return res
    lines: list[str] = []
    total = 0
    for (name, line), kind in zip(entries, kinds, strict=True):
        size, _, ftype = kind.partition(" ")
        if kind == "missing":
            res["missing"].append(name[:256])
        elif ftype.startswith("regular") and size.isdigit():
            lines.append(line)
            total += int(size)
        else:
            res["skipped"].append({"name": name[:256], "reason": f"not a regular file ({ftype or kind}): not read"})
    res["bytes"] = total
    if total > budget[0]:
        res["status"] = "too-large"
        res["detail"] = f"{total} bytes listed; verification budget left {budget[0]} of {VERIFY_BUDGET}"
        return res
    budget[0] -= total
    r: dict[str, list[str]] = {"ok": [], "failed": [], "missing": []}
    for chunk in _chunks([q(line) for line in lines]):
        # the regular entries' own lines, on stdin: the manifest file itself is not handed to sha256sum -c
        _, out, _ = sh(f"cd {q(d)} && printf '%s\\n' {chunk} | timeout 120 {algo}sum -c - 2>/dev/null", 130)
        for k, v in parse.check_output(out).items():
            r[k] += v
    res["failed"] = r["failed"][:50]
    res["missing"] = (res["missing"] + r["missing"])[:50]
    res["skipped"] = res["skipped"][:50]
    if r["failed"]:
        res["status"] = "mismatch"
    elif r["ok"] and (res["missing"] or res["skipped"]):
        res["status"] = "partial"
    elif r["ok"]:
        res["status"] = "ok"
    elif res["missing"]:
        res["status"] = "files-missing"
    else:
        res["status"] = "unreadable"
        if res["skipped"]:
            res["detail"] = "no regular file listed"
    return res


def _chunks(words: list[str], size: int = 60_000) -> list[str]:
    """Shell words joined into pieces that keep each command well under the kernel's 128 KiB per argument."""
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for w in words:
        if cur and n + len(w) > size:
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(w)
        n += len(w) + 1
    if cur:
        out.append(" ".join(cur))
    return out


def read_text(sh: Shell, path: str, root: str = "", limit: int = 1048576) -> str | None:
    rc, out, _ = sh(f"[ -f {q(root + path)} ] && head -c {limit} {q(root + path)}", 10)
    return out if rc == 0 else None


def session_shell(run: Callable[..., Any]) -> Shell:
    """Adapt scanner.sdk.ssh_session.HostSession.run (privileged) to our Shell."""
    def sh(command: str, timeout: float = 20.0) -> tuple[int, str, bool]:
        r = run(command, timeout=timeout, privileged=True)
        if r.exit_status == -1 or not r.clean:
            # an answer we did not see whole would read as "no such backup": not assessed instead. The
            # command is not quoted: it may name a secret's path.
            why = "ended without an exit status" if r.exit_status == -1 else "printed nothing of ours"
            raise CheckError("protocol", f"a command over the SSH session {why}: backups not read")
        return r.exit_status, r.stdout, r.truncated
    return sh
