"""One SQLite file (sqlite-utils) with versioned migrations. Every write is one short transaction, so a scan
killed at any point leaves a consistent file that `scan --resume` can finish.

Durability: WAL with synchronous=FULL, so a commit is on the disk (the WAL fsynced) before the next step
starts: a power cut loses at most the transaction being written, never one a command already reported done
(NORMAL could lose every commit since the last checkpoint, e.g. a whole scan already notified). It costs about
0.2 ms per commit, nothing next to a scan's network time (README "Under faults")."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from scanner.core.errors import ScanFailed, TcmscanError, UsageError
from scanner.core.files import private_dir, private_file
from scanner.core.models import Asset, AttemptResult, Finding, Observation, RuleResult
from scanner.core.scope import Scope
from scanner.store.migrations import MIGRATIONS, SCHEMA_VERSION

# How long a write waits for another process's transaction (each is short: one attempt, one phase) before the
# command stops with "locked". Two scans writing the same file wait for each other instead of failing mid-scan;
# opening still gives up after the Store's `timeout`, so a file someone holds locked is refused at the start.
WRITE_WAIT = 60.0
LOW_SPACE = 1 << 20          # an I/O error with less than this free on the disk is read as "the disk is full"


class Store:
    def __init__(self, path: str | Path, timeout: float = 5.0) -> None:
        self.path = Path(path)
        try:
            # The database holds every finding and its evidence: 0600 in a 0700 directory when we create them.
            # SQLite gives the -wal and -shm files the database file's mode, so creating it first covers those.
            private_dir(self.path.parent)
            private_file(self.path)
            conn = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.db = sqlite_utils.Database(conn)
            self.migrate()
            # Fail now, with a clear line, if another process holds the write lock (WAL lets us read anyway).
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            conn.execute(f"PRAGMA busy_timeout = {int(WRITE_WAIT * 1000)}")
        except TcmscanError:
            raise
        except sqlite3.OperationalError as e:
            raise store_error(self.path, e) from None
        except sqlite3.DatabaseError as e:
            raise UsageError(f"database {self.path} is not a usable tcmscan database ({e})") from None
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ScanFailed(f"cannot create database {self.path}: {e.strerror}") from None
            raise UsageError(f"cannot open database {self.path}: {e.strerror}") from None

    # -- schema ----------------------------------------------------------------------------------
    def version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> list[int]:
        applied = []
        current = self.version()
        if current > SCHEMA_VERSION:
            raise UsageError(f"database {self.path} has schema {current}, newer than this tcmscan ({SCHEMA_VERSION})")
        for version, _name, fn in MIGRATIONS:
            if version <= current:
                continue
            with self.tx():
                # Read again under the write lock: another process opening the same new file may have applied
                # it while we waited (two scans started together would otherwise both create the tables).
                if self.version() >= version:
                    continue
                fn(self.db)
                self.db.execute(f"PRAGMA user_version = {version}")
            applied.append(version)
        return applied

    def tx(self) -> Any:
        return _Tx(self.db.conn, self.path)

    def close(self) -> None:
        self.db.conn.close()

    # -- scans -----------------------------------------------------------------------------------
    def create_scan(self, row: dict[str, Any]) -> None:
        with self.tx():
            self.db["scans"].insert(_enc(row))

    def update_scan(self, scan_id: str, **fields: Any) -> None:
        with self.tx():
            self.db["scans"].update(scan_id, _enc(fields))

    def scan(self, scan_id: str) -> dict[str, Any]:
        try:
            return _dec(self.db["scans"].get(scan_id), ("targets", "scope", "exclude", "settings", "inventory",
                                                        "check_versions"))
        except sqlite_utils.db.NotFoundError:
            raise UsageError(f"no scan {scan_id!r} in {self.path}") from None

    def scans(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM scans ORDER BY created").fetchall()
        cols = [c.name for c in self.db["scans"].columns]
        return [_dec(dict(zip(cols, r, strict=True)), ("targets", "scope", "exclude", "settings")) for r in rows]

    def latest_scan_id(self) -> str:
        row = self.db.execute("SELECT id FROM scans ORDER BY created DESC, rowid DESC LIMIT 1").fetchone()
        if not row:
            raise UsageError(f"no scans in {self.path} yet")
        return row[0]

    def previous_scan_id(self, scan_id: str) -> str | None:
        """The latest earlier completed scan of the same scope (for diffs and trends): the same allowlist
        networks, in any order or spelling (stored as the texts the user wrote)."""
        cur = self.scan(scan_id)
        want = _stored_scope(cur["scope"])
        rows = self.db.execute("SELECT id, scope FROM scans WHERE created < ? AND status = 'done' "
                               "ORDER BY created DESC", [cur["created"]]).fetchall()
        for sid, scope in rows:
            other = _stored_scope(json.loads(scope))
            if want is not None and other is not None and other.same_allowlist(want):
                return sid
        return None

    def delete_scan(self, scan_id: str) -> None:
        with self.tx():
            for table in ("observations", "attempts", "findings", "rule_results", "services", "assets", "events"):
                self.db.execute(f"DELETE FROM {table} WHERE scan_id = ?", [scan_id])
            self.db.execute("DELETE FROM scans WHERE id = ?", [scan_id])

    # -- assets ----------------------------------------------------------------------------------
    def save_assets(self, scan_id: str, assets: Iterable[Asset]) -> None:
        """Replace the scan's assets and services with these."""
        with self.tx():
            self.db.execute("DELETE FROM services WHERE scan_id = ?", [scan_id])
            self.db.execute("DELETE FROM assets WHERE scan_id = ?", [scan_id])
            for a in assets:
                self.add_asset(scan_id, a)

    def add_asset(self, scan_id: str, asset: Asset) -> None:
        """One discovered host and its services (replacing an earlier row of the same address)."""
        d = asset.to_dict()
        services = d.pop("services")
        d.update(scan_id=scan_id, fragile=int(asset.fragile), internet_facing=int(asset.internet_facing))
        with self.tx():
            self.db.execute("DELETE FROM services WHERE scan_id = ? AND address = ?", [scan_id, asset.address])
            self.db["assets"].insert(_enc(d), replace=True)
            self.db["services"].insert_all([{**s, "scan_id": scan_id, "address": asset.address} for s in services])

    def update_asset_class(self, scan_id: str, asset: Asset) -> None:
        """Rewrite one asset's class, class evidence, role and criticality (its services and the rest stay)."""
        with self.tx():
            self.db.execute("UPDATE assets SET class = ?, class_evidence = ?, role = ?, criticality = ? "
                            "WHERE scan_id = ? AND address = ?",
                            [asset.cls, json.dumps(asset.class_evidence, ensure_ascii=False), asset.role,
                             asset.criticality, scan_id, asset.address])

    def assets(self, scan_id: str) -> list[Asset]:
        out = []
        for row in self.db["assets"].rows_where("scan_id = ?", [scan_id], order_by="address"):
            row = _dec(row, ("class_evidence", "extra"))
            row.pop("scan_id")
            row["fragile"], row["internet_facing"] = bool(row["fragile"]), bool(row["internet_facing"])
            svcs = self.db["services"].rows_where("scan_id = ? AND address = ?", [scan_id, row["address"]],
                                                  order_by="proto, port")
            row["services"] = [{k: v for k, v in s.items() if k not in ("scan_id", "address")} for s in svcs]
            out.append(Asset.from_dict(row))
        return sorted(out, key=lambda a: _addr_key(a.address))

    # -- attempts and observations --------------------------------------------------------------
    def add_pending(self, scan_id: str, rows: Iterable[tuple[str, str, str, str, int | None]]) -> None:
        with self.tx():
            self.db["attempts"].insert_all(
                ({"id": aid, "scan_id": scan_id, "check_id": cid, "check_version": ver, "address": addr,
                  "port": port, "status": "pending", "reason": "", "detail": "", "duration": 0.0}
                 for aid, cid, ver, addr, port in rows), ignore=True)

    def record_attempt(self, scan_id: str, result: AttemptResult, check_version: str, finished: str) -> None:
        """The attempt row and its observations land together or not at all."""
        with self.tx():
            self.db.execute("DELETE FROM observations WHERE attempt_id = ?", [result.attempt_id])
            self.db["attempts"].upsert({
                "id": result.attempt_id, "scan_id": scan_id, "check_id": result.check_id,
                "check_version": check_version, "address": result.address, "port": result.port,
                "status": result.status, "reason": result.reason, "detail": result.detail[:2000],
                "duration": result.duration, "finished": finished}, pk="id")
            self.db["observations"].insert_all(
                {"scan_id": scan_id, "attempt_id": result.attempt_id, "check_id": o.check_id, "address": o.address,
                 "port": o.port, "key": o.key, "data": json.dumps(o.data, ensure_ascii=False, sort_keys=True,
                                                                   default=str)}
                for o in result.observations)

    def attempts(self, scan_id: str, status: str | None = None) -> list[dict[str, Any]]:
        where, args = "scan_id = ?", [scan_id]
        if status:
            where, args = where + " AND status = ?", [*args, status]
        return list(self.db["attempts"].rows_where(where, args, order_by="address, check_id, port"))

    def observations(self, scan_id: str) -> list[Observation]:
        rows = self.db["observations"].rows_where("scan_id = ?", [scan_id], order_by="address, check_id, port, id")
        return [Observation(r["check_id"], r["address"], r["port"], r["key"], json.loads(r["data"])) for r in rows]

    def add_event(self, scan_id: str, time: str, address: str, message: str) -> None:
        with self.tx():
            self.db["events"].insert({"scan_id": scan_id, "time": time, "address": address, "message": message})

    def events(self, scan_id: str) -> list[dict[str, Any]]:
        return list(self.db["events"].rows_where("scan_id = ?", [scan_id], order_by="id"))

    # -- verdicts --------------------------------------------------------------------------------
    def save_verdicts(self, scan_id: str, findings: list[Finding], results: list[RuleResult]) -> None:
        with self.tx():
            self.db.execute("DELETE FROM findings WHERE scan_id = ?", [scan_id])
            self.db.execute("DELETE FROM rule_results WHERE scan_id = ?", [scan_id])
            self.db["findings"].insert_all(
                _enc({**f.to_dict(), "scan_id": scan_id}) for f in findings)
            self.db["rule_results"].insert_all(
                {"scan_id": scan_id, "rule_id": r.rule_id, "address": r.address, "status": r.status,
                 "reason": r.reason} for r in results)

    def findings(self, scan_id: str) -> list[Finding]:
        out = []
        for r in self.db["findings"].rows_where("scan_id = ?", [scan_id]):
            r = _dec(r, ("clauses", "evidence", "remediation", "waiver", "risk"))
            r.pop("scan_id")
            out.append(Finding(**r))
        return sorted(out, key=lambda f: (_addr_key(f.address), f.port or 0, f.rule_id, f.evidence_key))

    def rule_results(self, scan_id: str) -> list[RuleResult]:
        return [RuleResult(r["rule_id"], r["address"], r["status"], r["reason"])
                for r in self.db["rule_results"].rows_where("scan_id = ?", [scan_id], order_by="address, rule_id")]

    # -- waivers ---------------------------------------------------------------------------------
    def add_waiver(self, row: dict[str, Any]) -> int:
        with self.tx():
            return self.db["waivers"].insert(row).last_pk

    def waivers(self) -> list[dict[str, Any]]:
        return list(self.db["waivers"].rows_where(order_by="id"))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK; nested use joins the outer transaction. A write SQLite refuses (disk
    full, locked too long, I/O error) rolls back and ends the command with one line (ScanFailed, exit 3); what
    earlier transactions stored stays."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.outer = False

    def __enter__(self) -> None:
        self.outer = not self.conn.in_transaction
        if self.outer:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise store_error(self.path, e) from None

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        if not self.outer:
            return
        if exc is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                self._rollback()
                raise store_error(self.path, e) from None
            return
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):
            raise store_error(self.path, exc) from None

    def _rollback(self) -> None:
        # A failed COMMIT (SQLITE_FULL) can leave the transaction open; SQLite may also have ended it already.
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")


def store_error(path: Path, e: sqlite3.OperationalError) -> ScanFailed:
    """The one line for a database SQLite could not read or write: locked, disk full, or an I/O error."""
    name = getattr(e, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(e):
        return ScanFailed(f"database {path} is locked by another process")
    free = _free_space(path.parent)
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and free is not None and free < LOW_SPACE):
        left = f"{free // 1024} KiB free" if free is not None else "no space left"
        return ScanFailed(f"database {path}: the disk is full ({left}): the last write was not stored, what was "
                          f"stored before is intact")
    return ScanFailed(f"database {path}: {e} ({name or 'sqlite error'}); what was stored before is intact")


def _free_space(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _enc(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v, ensure_ascii=False, sort_keys=True, default=str) if isinstance(v, (dict, list, tuple))
            else v for k, v in row.items()}


def _stored_scope(texts: Any) -> Scope | None:
    """A stored scope list as a Scope; None for a row that holds none we can read (never the same scope)."""
    try:
        return Scope.parse(texts or [])
    except (UsageError, TypeError, AttributeError):
        return None


def _dec(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    row = dict(row)
    for f in fields:
        if f in row and isinstance(row[f], str) and row[f]:
            row[f] = json.loads(row[f])
    return row


def _addr_key(address: str) -> tuple[int, int]:
    import ipaddress

    a = ipaddress.ip_address(address)
    return (a.version, int(a))
