"""`tcmscan run JOB`: what a timer calls. Lock -> scan (or resume the job's dead scan) -> reports (signed) ->
diff against the job's previous scan -> notify -> prune. Every step is recorded in the job_runs table, so a
run that dies after the scan does not rescan: the next run only finishes the reporting.

Exit codes: 0 done; 2 bad config or usage; 3 could not run (job already running, scan failed, database
locked); 4 done, but a report or a notification could not be delivered (recorded; the scan is kept)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scanner.assess.evaluate import diff_findings
from scanner.core.errors import ScanFailed, TcmscanError, UsageError
from scanner.core.files import private_dir
from scanner.core.output import finding_brief
from scanner.core.scope import Scope
from scanner.core.vocab import EXIT_DELIVERY, EXIT_OK, EXIT_SCAN_FAILED, SEVERITIES
from scanner.engine.scan import ScanSettings, new_scan_id, now_iso, resume_scan, start_scan
from scanner.engine.settings import BY_NAME, SETTINGS
from scanner.schedule.jobs import Job, JobsConfig, data_dir_for
from scanner.schedule.notify import Change, Delivery, deliver, select_changes
from scanner.store import Store

MAX_RESUMES = 3              # a dead scan that keeps dying is abandoned after this many runs
SCAN_ID = re.compile(r"^s\d{8}-\d{6}-[0-9a-f]{4}$")
log = logging.getLogger("tcmscan.jobrun")


class JobBusy(ScanFailed):
    """Another run of the job holds its lock (exit 3)."""


@dataclass
class RunResult:
    job: str
    scan_id: str
    resumed: bool = False
    previous_scan_id: str | None = None
    status: str = "done"
    new: list[str] = field(default_factory=list)         # fingerprints of every new finding (any severity)
    fixed: list[str] = field(default_factory=list)
    notified_new: int = 0
    notified_fixed: int = 0
    report_dirs: list[str] = field(default_factory=list)
    report_status: str = ""
    signed: bool = False
    notifications: list[Delivery] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    error: str = ""
    resumable: bool = False              # a scan row exists that the next run can finish

    @property
    def exit_code(self) -> int:
        if self.status != "done":
            return EXIT_SCAN_FAILED
        if self.report_status != "ok" or any(not d.ok for d in self.notifications):
            return EXIT_DELIVERY
        return EXIT_OK

    def summary(self) -> str:
        notes = ", ".join(f"{d.channel} {'ok' if d.ok else 'FAILED'}" for d in self.notifications) or "nothing sent"
        return (f"job {self.job}: scan {self.scan_id} {self.status}{' (resumed)' if self.resumed else ''}; "
                f"vs {self.previous_scan_id or 'no previous scan'}: {len(self.new)} new, {len(self.fixed)} fixed; "
                f"report {self.report_status}{' (signed)' if self.signed else ''}"
                f"{': ' + self.report_dirs[0].rsplit('/', 1)[0] if self.report_dirs else ''}; "
                f"notifications: {notes}; pruned {len(self.pruned)} old scan(s)")


# -- lock ------------------------------------------------------------------------------------------------------
class JobLock:
    """fcntl.flock on <data_dir>/locks/<job>.lock: released by the kernel when the process dies, so a crashed
    run never blocks the next one."""

    def __init__(self, data_dir: Path, job: str) -> None:
        self.path = data_dir / "locks" / f"{job}.lock"
        self.job = job
        self.fd: int | None = None

    def __enter__(self) -> JobLock:
        try:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise ScanFailed(f"cannot create the lock file {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise JobBusy(f"job {self.job!r} is already running ({holder}); not starting a second run") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {now_iso()}".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *_: Any) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# -- job_runs rows -----------------------------------------------------------------------------------------
def _runs(store: Store, job: str) -> list[dict[str, Any]]:
    return list(store.db["job_runs"].rows_where("job = ?", [job], order_by="started, rowid"))


def _update(store: Store, scan_id: str, **fields: Any) -> None:
    enc = {k: json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (dict, list)) else v
           for k, v in fields.items()}
    with store.tx():
        store.db["job_runs"].update(scan_id, enc)


def _try_update(store: Store, scan_id: str, **fields: Any) -> None:
    with contextlib.suppress(TcmscanError):
        _update(store, scan_id, **fields)


def _scan_row(store: Store, scan_id: str) -> dict[str, Any] | None:
    try:
        return store.scan(scan_id)
    except UsageError:
        return None


def settings_for(job: Job) -> ScanSettings:
    """The settings the job's scan runs with: a copy, so a run never edits the loaded job."""
    return copy.deepcopy(job.scan)


def _same_settings(stored: dict[str, Any], job: Job) -> bool:
    # Resume only what this job would scan now: a changed target list, scope or check set starts afresh
    # (the settings SETTINGS marks `restart`). Scopes compare as networks, the way Store.previous_scan_id does.
    want = asdict(settings_for(job))
    if Scope.parse(stored.get("scope") or [], stored.get("exclude") or []) != Scope.parse(job.scope, job.exclude):
        return False
    keys = [s.name for s in SETTINGS if s.restart and s.name not in ("scope", "exclude")]
    return all(stored.get(k, BY_NAME[k].default) == want.get(k) for k in keys)


def unfinished(store: Store, job: Job) -> tuple[dict[str, Any] | None, str]:
    """The job's latest run if it did not finish, and what is left: 'scan' or 'post' (scan done, reports etc.)."""
    runs = _runs(store, job.name)
    if not runs or runs[-1]["status"] in ("done", "abandoned", "pruned"):
        return None, ""
    run = runs[-1]
    scan = _scan_row(store, run["scan_id"])
    if scan is None:                          # died before the scan row was written: nothing to resume
        _update(store, run["scan_id"], status="abandoned", error="the scan never started")
        return None, ""
    if scan["status"] == "done":
        return run, "post"
    if (run["runs"] or 0) >= MAX_RESUMES or not _same_settings(scan["settings"], job):
        why = "resumed too often" if (run["runs"] or 0) >= MAX_RESUMES else "the job changed since"
        _update(store, run["scan_id"], status="abandoned", error=f"not resumed: {why}")
        log.warning("job %s: scan %s abandoned (%s); starting a new scan", job.name, run["scan_id"], why)
        return None, ""
    return run, "scan"


def previous_done(store: Store, job: str, scan_id: str) -> str | None:
    """The job's latest completed scan before this one (job_runs order, which is run order)."""
    prev = None
    for r in _runs(store, job):
        if r["scan_id"] == scan_id:
            break
        s = _scan_row(store, r["scan_id"]) if r["status"] != "pruned" else None
        if s is not None and s["status"] == "done":
            prev = r["scan_id"]
    return prev


# -- reports -----------------------------------------------------------------------------------------------
def write_reports(store: Store, job: Job, scan_id: str, out_root: Path) -> tuple[list[str], str, bool]:
    """One bundle per language under <out_dir>/<scan_id>/<lang>; signed when the job names a key.
    Uses the same function `tcmscan report` calls (reports/render.py)."""
    try:
        from reports.render import write_bundle
        from reports.signing import load_signing_key, read_passphrase
    except ImportError as e:
        return [], f"report not available ({e})", False
    rc = job.report
    try:
        keys = []
        if rc.sign_key or rc.sign_sm2_key:
            passphrase = read_passphrase(rc.passphrase_file)
            keys = [load_signing_key(k, passphrase) for k in (rc.sign_key, rc.sign_sm2_key) if k]
        dirs = []
        for lang in rc.langs:
            out = out_root / scan_id / lang
            write_bundle(store, scan_id, out, formats=rc.formats, lang=lang, keys=keys, force=True)
            dirs.append(str(out))
        return dirs, "ok", bool(keys)
    except TcmscanError as e:
        return [], f"failed: {e}", False
    except Exception as e:  # noqa: BLE001 - a report bug must not lose the scan or the notification
        log.exception("report for %s failed", scan_id)
        return [], f"failed: {type(e).__name__}: {e}", False


# -- retention -----------------------------------------------------------------------------------------------
def prune(store: Store, job: Job, out_root: Path, *, now: dt.datetime | None = None) -> list[str]:
    """Delete the job's scans past retention (keep_scans newest, or younger than days), never the latest
    completed one nor a scan another job or a manual run owns; their report directories go too."""
    now = now or dt.datetime.now(dt.UTC)
    runs = [r for r in _runs(store, job.name) if r["status"] in ("done", "abandoned")]
    rows = [(r, _scan_row(store, r["scan_id"])) for r in runs]
    rows = [(r, s) for r, s in rows if s is not None]
    done = [r["scan_id"] for r, s in rows if s["status"] == "done"]
    latest_done = done[-1] if done else None
    ret = job.retention
    ordered = [r["scan_id"] for r, _ in rows][::-1]          # newest first
    created = {r["scan_id"]: dt.datetime.fromisoformat(s["created"]) for r, s in rows}
    cutoff = now - dt.timedelta(days=ret.days) if ret.days else None

    def expired(i: int, sid: str) -> bool:   # both limits apply: at most keep_scans scans, none older than days
        return bool((ret.keep_scans and i >= ret.keep_scans) or (cutoff and created[sid] < cutoff))

    keep = {sid for i, sid in enumerate(ordered) if not expired(i, sid)} | ({latest_done} - {None})
    gone = []
    for sid in ordered:
        if sid in keep:
            continue
        store.delete_scan(sid)
        _update(store, sid, status="pruned")
        d = out_root / sid
        if SCAN_ID.match(sid) and d.is_dir() and d.resolve().parent == out_root.resolve():
            shutil.rmtree(d, ignore_errors=True)
        gone.append(sid)
    return gone


# -- the run ---------------------------------------------------------------------------------------------------
def run_job(config: JobsConfig, name: str, *, db: str | None = None, quiet: bool = True,
            sleep: Callable[[float], None] | None = None) -> RunResult:
    job = config.job(name)
    data_dir = data_dir_for(config)
    # run state, locks, pinned host keys, the database and reports live here: 0700 when we create it
    try:
        private_dir(data_dir)
    except OSError as e:
        raise ScanFailed(f"cannot create the data directory {data_dir}: {e.strerror}") from None
    out_root = Path(job.report.out_dir) if job.report.out_dir else data_dir / "reports" / job.name
    db_path = job.db or db or str(data_dir / "tcmscan.db")
    if not job.known_hosts:                    # SSH host keys pinned with the job's other state
        job.known_hosts = str(data_dir / "known_hosts")
    with JobLock(data_dir, job.name):
        store = Store(db_path)
        try:
            return _run(store, job, out_root, quiet, sleep)
        finally:
            store.close()


def _run(store: Store, job: Job, out_root: Path, quiet: bool, sleep: Callable[[float], None] | None) -> RunResult:
    run, left = unfinished(store, job)
    if run is None:
        scan_id = new_scan_id()
        with store.tx():
            store.db["job_runs"].insert({"scan_id": scan_id, "job": job.name, "started": now_iso(), "runs": 1,
                                         "status": "running", "report_status": "", "error": ""})
        res = RunResult(job.name, scan_id)
        scan = lambda: start_scan(settings_for(job), store, quiet=quiet, scan_id=scan_id)  # noqa: E731
    else:
        scan_id = run["scan_id"]
        _update(store, scan_id, runs=(run["runs"] or 0) + 1, status="running")
        res = RunResult(job.name, scan_id, resumed=True)
        scan = (lambda: resume_scan(scan_id, store, credentials=job.credentials, quiet=quiet)) \
            if left == "scan" else (lambda: scan_id)
    try:
        scan()
    except TcmscanError as e:
        res.status, res.error = "failed", str(e)
    except KeyboardInterrupt:
        res.status, res.error = "interrupted", "interrupted (SIGTERM or Ctrl-C)"
    if res.status != "done":
        # Best effort: when the database itself failed (disk full, locked), the alert still goes out.
        _try_update(store, scan_id, status=res.status, error=res.error)
        res.resumable = _scan_row(store, scan_id) is not None
        res.notifications = deliver(Change(job.name, scan_id, None, res.status, min_severity=job.notify.min_severity,
                                           error=res.error), job.notify, **_sleep(sleep))
        _try_update(store, scan_id, notifications=[d.to_dict() for d in res.notifications])
        if res.status == "interrupted":
            raise KeyboardInterrupt
        return res

    res.previous_scan_id = previous_done(store, job.name, scan_id)
    findings = store.findings(scan_id)
    old = store.findings(res.previous_scan_id) if res.previous_scan_id else []
    diff = diff_findings(old, findings, store.rule_results(scan_id))
    res.new = [f.fingerprint for f in diff["new"]]
    res.fixed = [f.fingerprint for f in diff["fixed"]]

    res.report_dirs, res.report_status, res.signed = write_reports(store, job, scan_id, out_root)
    _update(store, scan_id, previous_scan_id=res.previous_scan_id, report_status=res.report_status,
            report_dir=str(out_root / scan_id) if res.report_dirs else "",
            summary={k: [finding_brief(f) for f in v] for k, v in diff.items()})

    new, fixed = select_changes(diff, job.notify)
    res.notified_new, res.notified_fixed = len(new), len(fixed)
    open_counts = {s: sum(1 for f in findings if f.status == "open" and f.severity == s) for s in reversed(SEVERITIES)}
    change = Change(job.name, scan_id, res.previous_scan_id, "done", new=new, fixed=fixed, open_counts=open_counts,
                    min_severity=job.notify.min_severity, report_dirs=res.report_dirs,
                    report_status=res.report_status, signed=res.signed)
    res.notifications = deliver(change, job.notify, **_sleep(sleep))
    _update(store, scan_id, notifications=[d.to_dict() for d in res.notifications])

    # The run counts as done before pruning, so that pruning can never remove the scan it just made.
    _update(store, scan_id, status="done", finished=now_iso(), error="")
    res.pruned = prune(store, job, out_root)
    return res


def _sleep(sleep: Callable[[float], None] | None) -> dict[str, Any]:
    return {"sleep": sleep} if sleep else {}
