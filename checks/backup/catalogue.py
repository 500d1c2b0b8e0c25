"""backup.catalogue: what backups a host has, read-only over the shared authenticated session.

One observation, key `backup-sets`, always emitted (an empty list is a fact: rule backup.missing fires on
it): {sets, jobs, tools, restore_tests, manifests, notes}. A *set* is one place a host's backups land: a
local restic or borg repository, a directory of dump/archive files, or a remote destination named by a
job when no local copy exists. Per set: last successful backup, encrypted, off-host copy, integrity,
protection against deletion with production credentials. How each is decided: docs/checks/backup.md.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from checks.backup import _collect as collect
from checks.backup import _parse as parse
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="backup.catalogue",
    version="1.0",
    title_zh="备份作业与备份集（只读）",
    title_en="Backup jobs and backup sets (read-only)",
    granularity="host",
    classes=("server",),
    needs_credentials="ssh",
    timeout=240.0,
    description="Cron/systemd backup jobs, restic/borg catalogues, dump files, checksum manifests and restore-test "
                "records, read with the host's own tools over the shared SSH session. Never starts a backup/restore.",
)


def run(ctx: CheckContext) -> list[Observation]:
    from scanner.sdk.ssh_session import host_session

    session = host_session(ctx)
    sh = collect.session_shell(session.run)
    data = catalogue(sh, ctx.knowledge["backup_tools"], own_addresses={ctx.address})
    return [ctx.observation("backup-sets", data, port=None)]


def catalogue(sh: collect.Shell, know: dict[str, Any], *, root: str = "",
              own_addresses: set[str] | None = None) -> dict[str, Any]:
    """All backup facts of one host. `root` prefixes every path (tests point it at a directory tree)."""
    own = {"localhost", "127.0.0.1", "::1", *(own_addresses or set())}
    raw = collect.gather_basics(sh, root)
    if raw.now is None:
        raise CheckError("protocol", "the host did not answer `date`: no shell to read backups with")
    if raw.uid != "0" and not root:
        # backups are mostly root-only (restic repos are 0700): an unprivileged view would report
        # "no backup" where there is one, so we do not assess rather than guess
        raise CheckError("auth", f"reading backups needs root or sudo; the session runs as uid {raw.uid}")
    tools_list = list(know["tools"])
    remote_prefixes = list(know["restic_remote_prefixes"])

    # ---- jobs: each cron line / unit that runs a backup tool, with the scripts and env files it names
    jobs: list[dict[str, Any]] = []
    job_texts: list[tuple[dict[str, Any], str]] = []
    entries = _job_entries(raw)
    # files a line names, taken from its redacted text: a secret that looks like a path is never sent back
    # as a command (a command can end up in an attempt's error detail)
    named_by = {line: re.findall(r"(/[\w./@+-]+)", parse.redact(line, limit=None)) for _, line in entries}
    named = sorted({w for ws in named_by.values() for w in ws})
    extra = collect.read_files(sh, [*named, *know["restic_env_files"]], root)
    for source, line in entries:
        text = line + "\n" + "\n".join(extra.get(p, "") for p in named_by[line])
        # one more hop: env files a script sources (`. /etc/restic/env`, EnvironmentFile=)
        hop = [p for p in re.findall(r"(?:^|\s)(?:\.|source|EnvironmentFile=-?)\s*(/[\w./@+-]+)", text, re.M)
               if p not in extra]
        if hop:
            extra.update(collect.read_files(sh, hop, root))
            text += "\n" + "\n".join(extra.get(p, "") for p in hop)
        info = parse.job_info(text, tools_list, remote_prefixes)
        if not info.tools:
            continue
        remote = [d for d in info.remote_destinations if parse.remote_host(d) not in own]
        job = {"source": source, "command": parse.redact(line.strip()), "tools": info.tools,
               "remote_destinations": [parse.redact(d) for d in remote],
               "restic_repositories": [parse.redact(r) for r in info.restic_repos]}
        jobs.append(job)
        pc = re.search(r"BORG_PASSCOMMAND=[\"']?cat\s+(/[\w./@+-]+)", text)
        job_texts.append((job | {"_info": info, "_remote": remote, "_passfile": pc.group(1) if pc else None}, text))
    tools = sorted({t for j in jobs for t in j["tools"]})

    # ---- where to look: the usual roots plus local paths the jobs name as repositories/destinations
    roots = list(know["roots"])
    for j, _ in job_texts:
        for r in [*j["_info"].restic_repos, *j["_info"].borg_repos]:
            if r.startswith("/") and r not in roots:
                roots.append(r)
    files, repos = collect.find_candidates(sh, roots[:40], know, root)
    repo_paths = {p for _, p in repos}

    def job_for(path: str) -> list[dict[str, Any]]:
        return [j for j, text in job_texts if path in text]

    password_files = _password_files(sh, job_texts, extra, know, root)
    sets: list[dict[str, Any]] = []
    notes: list[str] = list(raw.notes)

    for tool, path in repos:
        owning = job_for(path)
        if tool == "restic":
            pw = next((p for j in owning for p in j["_info"].password_files if p in password_files), None)
            pw = pw or next(iter(password_files), None)
            info = collect.restic_repo(sh, path, pw, root)
        else:
            info = collect.borg_repo(sh, path, _borg_passfile(owning), raw.tz, root)
        sets.append(_set(sh, f"{tool}:{path}", tool, path, info, owning, root))

    # ---- dump/archive directories (files inside repositories are not dumps)
    ignore = know["ignore_names"]
    dumps: dict[str, list[dict[str, Any]]] = {}
    manifests_found: list[str] = []
    for f in files:
        if any(f["path"].startswith(rp + "/") for rp in repo_paths):
            continue
        name = posixpath.basename(f["path"])
        if parse.matches_any(name, know["manifest_globs"]):
            manifests_found.append(f["path"])
        elif parse.matches_any(name, know["dump_globs"]) and not parse.matches_any(name, ignore):
            dumps.setdefault(posixpath.dirname(f["path"]), []).append(f)
    budget = [collect.VERIFY_BUDGET]
    manifests = [collect.verify_manifest(sh, m, budget, root) for m in manifests_found[:50]]
    for d, fs in sorted(dumps.items()):
        good = [f for f in fs if f["size"] > 0]
        newest = max(good, key=lambda f: f["mtime"]) if good else None
        enc = all(any(f["path"].endswith(s) for s in know["encrypted_suffixes"]) for f in fs)
        names = {posixpath.basename(f["path"]) for f in fs}
        covering = [m for m in manifests if posixpath.dirname(m["path"]) == d]
        info = {"encrypted": enc, "encryption_basis": "file names (.gpg/.age/.enc)" if enc else
                "plain dump/archive files (no .gpg/.age/.enc)",
                "last_backup": parse.epoch_iso(newest["mtime"]) if newest else None,
                "last_backup_source": "mtime of the newest non-empty file" if newest else "all files empty",
                "snapshots": len(fs), "files": sorted(names)[:20], "total_bytes": sum(f["size"] for f in fs),
                "notes": [], "_manifests": covering}
        sets.append(_set(sh, f"files:{d}", "files", d, info, job_for(d), root))

    # ---- a job that writes only to a remote destination is a set of its own (no local copy seen)
    covered = {r for s in sets for r in s["_remotes"]}
    for j, _ in job_texts:
        for dest in j["_remote"]:
            if dest in covered or not (dest in j["_info"].restic_repos or dest in j["_info"].borg_repos
                                       or j["_info"].tools):
                continue
            covered.add(dest)
            sets.append({"name": parse.redact(dest), "tool": ",".join(j["tools"]), "location": parse.redact(dest),
                         "remote": True, "last_backup": None,
                         "last_backup_source": "remote destination: not contacted (no traffic from the audited host)",
                         "snapshots": None, "encrypted": True if dest in j["_info"].restic_repos else None,
                         "encryption_basis": "restic repository" if dest in j["_info"].restic_repos else
                         "not observable without contacting the destination",
                         "off_host": True, "off_host_copies": [parse.redact(dest)], "integrity": "not-assessed",
                         "protected_copy": None, "writable_by_production": True, "jobs": [j["source"]],
                         "notes": [], "_remotes": [dest]})

    tests_, tnotes = _restore_tests(sh, know, root)
    notes += tnotes
    for s in sets:
        s.pop("_remotes", None)
        # a record naming the set (its location or name) counts for it; one naming no known set counts for all
        named = [t for t in tests_ if t["result"] == "ok" and (s["location"] in t["set"] or s["name"] in t["set"])]
        anon = [t for t in tests_ if t["result"] == "ok" and not any(
            x["location"] in t["set"] or x["name"] in t["set"] for x in sets)]
        s["last_restore_test"] = max((t["date"] for t in named or anon), default=None)
    for j in jobs:
        j.pop("_info", None)
    return {"host_time": raw.now, "systemd": raw.systemd, "sets": sets, "jobs": jobs, "tools": tools,
            "restore_tests": tests_, "manifests": manifests, "notes": notes[:50]}


def _job_entries(raw: collect.Raw) -> list[tuple[str, str]]:
    """(where, command line) for every cron line and every systemd ExecStart."""
    out: list[tuple[str, str]] = []
    texts = dict(raw.files)
    if raw.crontab_root:
        texts["crontab -l (root)"] = raw.crontab_root
    for src, text in texts.items():
        if src.startswith(("/etc/cron.hourly/", "/etc/cron.daily/", "/etc/cron.weekly/", "/etc/cron.monthly/")):
            out.append((src, src))       # a run-parts script: the whole file is the job
            continue
        for line in text.splitlines()[:2000]:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if src.endswith(".service"):
                if s.startswith("ExecStart"):
                    out.append((src, s.split("=", 1)[1].lstrip("-@+!")))
            elif src.endswith(".timer"):
                continue
            elif re.match(r"^(@\w+|[\d*/,-]+\s+[\d*/,-]+\s+[\d*/,-]+\s+[\w*/,-]+\s+[\w*/,-]+)\s", s):
                out.append((src, s))
    # a run-parts script's content is read as its "named file"
    return out[:500]


def _password_files(sh: collect.Shell, job_texts: list, extra: dict[str, str], know: dict[str, Any],
                    root: str) -> list[str]:
    """Password files named by jobs or at well-known places that exist and are readable (never read out)."""
    cands: list[str] = []
    for j, _ in job_texts:
        cands += j["_info"].password_files
    for text in extra.values():
        m = re.search(r"RESTIC_PASSWORD_FILE=[\"']?([^\s\"']+)", text)
        if m:
            cands.append(m.group(1))
    cands += know["restic_password_files"]
    cands = [c for c in dict.fromkeys(cands) if c.startswith("/")][:20]
    if not cands:
        return []
    lst = " ".join(collect.q(root + c) for c in cands)
    _, out, _ = sh(f"for f in {lst}; do [ -f \"$f\" ] && [ -r \"$f\" ] && [ -s \"$f\" ] && echo \"$f\"; done", 10)
    ok = {line[len(root):] if root else line for line in out.splitlines()}
    return [c for c in cands if c in ok]


def _borg_passfile(jobs: list[dict[str, Any]]) -> str | None:
    return next((j["_passfile"] for j in jobs if j.get("_passfile")), None)


def _set(sh: collect.Shell, name: str, tool: str, path: str, info: dict[str, Any], jobs: list[dict[str, Any]],
         root: str) -> dict[str, Any]:
    facts = collect.path_facts(sh, path, root)
    remotes = [d for j in jobs for d in j["_remote"]]
    manifests = info.pop("_manifests", [])
    if tool in ("restic", "borg"):
        integrity = "builtin"       # content-addressed, authenticated chunks: the tool verifies every read
    elif not manifests:
        integrity = "missing"
    elif any(m["status"] == "mismatch" for m in manifests):
        integrity = "mismatch"
    elif all(m["status"] == "ok" for m in manifests):
        integrity = "verified"
    else:
        integrity = "unverified"    # present but too large, partial or unreadable
    protection = ("borg append_only=1" if info.get("append_only") else "immutable attribute (chattr +i)"
                  if facts["immutable"] else "append-only attribute (chattr +a)" if facts["append_only"]
                  else "read-only mount" if facts["read_only_mount"] else None)
    return {"name": name, "tool": tool, "location": path, "remote": False, **info,
            "off_host": bool(remotes), "off_host_copies": [parse.redact(r) for r in dict.fromkeys(remotes)],
            "integrity": integrity, "manifests": [m["path"] for m in manifests],
            "owner": facts["owner"], "mode": facts["mode"], "protected_copy": protection,
            # production credentials (root on this host, and the keys its jobs use for remote copies) can
            # delete every copy unless one of them is protected by something observable here
            "writable_by_production": protection is None,
            "jobs": [j["source"] for j in jobs], "_remotes": remotes}


def _restore_tests(sh: collect.Shell, know: dict[str, Any], root: str) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for path in know["restore_test_files"]:
        text = collect.read_text(sh, path, root)
        if text is None:
            continue
        recs, problems = parse.restore_tests(text)
        out += [r | {"record": path} for r in recs]
        notes += [f"{path}: {p}" for p in problems]
    out.sort(key=lambda r: r["date"], reverse=True)
    return out[:100], notes


