"""A scan from targets to findings, in phases stored as it goes so a killed scan resumes where it stopped:
created -> discovered -> planned -> ran -> done."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.assess.baseline import Profile, Waiver, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.errors import TcmscanError, UsageError
from scanner.core.models import Asset, Service
from scanner.core.scope import Scope
from scanner.engine.assets import refine_from_observations
from scanner.engine.discovery import find_live_hosts, privileged, scan_services
from scanner.engine.inventory import (
    Inventory,
    InventoryEntry,
    class_for_role,
    declared_hl7_ports,
    load_inventory,
)
from scanner.engine.plugins import Registry, load_registry
from scanner.engine.progress import Progress, say
from scanner.engine.runner import LocalExecutor, plan_attempts
from scanner.engine.settings import ScanSettings, settings_from_stored  # ScanSettings re-exported
from scanner.engine.targets import build_target_set
from scanner.sdk.context import RunEnv
from scanner.sdk.credentials import CredentialStore, load_credentials
from scanner.sdk.ssh_session import close_sessions
from scanner.store import Store

# Hosts whose ports are scanned at once.  nmap mostly waits there (ICMP rate limits on closed UDP ports, -sV
# probe timeouts), not on the CPU: 8 keeps discovery of the lab no slower than 4 did before issue 17 grew the
# port lists (bench/bench_discovery.py).  Fragile hosts keep their own pace whatever this is.
DISCOVERY_WORKERS = 8


def default_data_dir() -> Path:
    return Path(os.environ.get("TCMSCAN_HOME", Path.home() / ".local" / "share" / "tcmscan"))


def known_hosts_path(given: str | None) -> Path:
    """The SSH host-key pin file: the one given, else the data directory's (`tcmscan keys pin` uses it too)."""
    return Path(given) if given else default_data_dir() / "known_hosts"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_scan_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("s%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def scope_of(settings: ScanSettings) -> Scope:
    """The scan's allowlist and do-not-touch list, parsed (UsageError on a bad network)."""
    return Scope.parse(settings.scope, settings.exclude)


def prepare(settings: ScanSettings) -> tuple[Inventory, CredentialStore, Profile, Registry]:
    """Validate every input before any packet leaves."""
    build_target_set(settings.targets, scope_of(settings))
    if settings.ca_file and not Path(settings.ca_file).is_file():
        raise UsageError(f"CA file {settings.ca_file} does not exist")
    inventory = load_inventory(settings.inventory)
    creds = load_credentials(settings.credentials)
    profile = load_profile(settings.profile)
    registry = load_registry()
    if settings.checks and not registry.select(settings.checks):
        raise UsageError(f"no installed check matches {', '.join(settings.checks)} (see 'tcmscan checks list')")
    for prefix in settings.exclude_mac:
        if not all(c in "0123456789abcdefABCDEF:-" for c in prefix) or len(prefix.replace(":", "")) < 6:
            raise UsageError(f"not a MAC prefix: {prefix!r} (e.g. 00:1b:4f)")
    return inventory, creds, profile, registry


def start_scan(settings: ScanSettings, store: Store, *, quiet: bool = False, scan_id: str | None = None) -> str:
    """`scan_id` lets a caller record the id before the scan exists (scheduled jobs resume a dead run by it)."""
    inventory, creds, profile, registry = prepare(settings)
    scan_id = scan_id or new_scan_id()
    store.create_scan({
        "id": scan_id, "created": now_iso(), "started": now_iso(), "finished": None, "status": "running",
        "phase": "created", "targets": settings.targets, "scope": settings.scope, "exclude": settings.exclude,
        "settings": asdict(settings), "inventory": inventory.to_dict(), "profile_id": profile.id,
        "profile_version": profile.version, "profile_sha256": profile.sha256, "tool_version": __version__,
        "check_versions": {c.meta.id: c.meta.version for c in registry.select(settings.checks)}, "error": None})
    n = len(build_target_set(settings.targets, scope_of(settings)).addresses)
    say(f"scan {scan_id} started ({n} targets, profile {profile.id} {profile.version})", quiet)
    continue_scan(scan_id, store, creds=creds, profile=profile, registry=registry, quiet=quiet)
    return scan_id


def resume_scan(scan_id: str, store: Store, *, credentials: str | None = None, quiet: bool = False) -> str:
    row = store.scan(scan_id)
    if row["status"] == "done":
        raise UsageError(f"scan {scan_id} is already complete")
    settings = settings_from_stored(row["settings"])
    if credentials:
        settings.credentials = credentials
    creds = load_credentials(settings.credentials)
    profile = load_profile(settings.profile)
    if profile.sha256 != row["profile_sha256"]:
        say(f"note: profile {profile.id} changed since the scan started; findings use the current one", quiet)
    store.update_scan(scan_id, status="running", error=None)
    say(f"resuming scan {scan_id} from phase '{row['phase']}'", quiet)
    continue_scan(scan_id, store, creds=creds, profile=profile, registry=load_registry(), quiet=quiet)
    return scan_id


def _inventory_from_row(row: dict[str, Any]) -> Inventory:
    inv = Inventory()
    for address, d in (row.get("inventory") or {}).items():
        d = dict(d)
        inv.entries[address] = InventoryEntry(address=address, name=d.pop("name", ""), role=d.pop("role", ""),
                                              cls=d.pop("class", ""), owner=d.pop("owner", ""),
                                              zone=d.pop("zone", ""), criticality=d.pop("criticality", 0),
                                              fragile=d.pop("fragile", None), extra=d)
    return inv


def continue_scan(scan_id: str, store: Store, *, creds: CredentialStore, profile: Profile, registry: Registry,
                  quiet: bool = False) -> None:
    """Run the remaining phases. A failure or interruption is recorded on the scan, which stays resumable."""
    try:
        _continue(scan_id, store, creds=creds, profile=profile, registry=registry, quiet=quiet)
    except TcmscanError as e:
        _mark(store, scan_id, "failed", str(e))
        raise
    except KeyboardInterrupt:
        _mark(store, scan_id, "interrupted", "interrupted")
        raise


def _mark(store: Store, scan_id: str, status: str, error: str) -> None:
    """Record why the scan stopped, if the database still takes a write: when the failure is the database's own
    (disk full, locked), the first error is the one to report and the row stays "running" (resumable)."""
    with contextlib.suppress(TcmscanError):
        store.update_scan(scan_id, status=status, error=error)


def _continue(scan_id: str, store: Store, *, creds: CredentialStore, profile: Profile, registry: Registry,
              quiet: bool) -> None:
    row = store.scan(scan_id)
    settings = settings_from_stored(row["settings"])
    inventory = _inventory_from_row(row)
    phase = row["phase"]
    if phase == "created":
        assets = discover(settings, inventory, store, scan_id, quiet)
        store.save_assets(scan_id, assets)
        store.update_scan(scan_id, phase="discovered")
        phase = "discovered"
    assets = store.assets(scan_id)
    checks = registry.select(settings.checks)
    if phase == "discovered":
        specs, decided = plan_attempts(scan_id, assets, checks,
                                       credential_types=lambda a: {c.type for c in creds.items if c.matches(a)},
                                       options=settings.check_options())
        versions = {c.meta.id: c.meta.version for c in checks}
        store.add_pending(scan_id, [(s.attempt_id, s.check_id, versions[s.check_id], s.asset["address"], s.port)
                                    for s in specs])
        with store.tx():
            for d in decided:
                store.record_attempt(scan_id, d, versions[d.check_id], now_iso())
        store.update_scan(scan_id, phase="planned")
        phase = "planned"
    if phase == "planned":
        run_pending(scan_id, store, assets, checks, settings, creds, quiet)
        store.update_scan(scan_id, phase="ran")
        phase = "ran"
    if phase == "ran":
        refine_stored(scan_id, store, inventory)
        evaluate_stored(scan_id, store, profile)
        store.update_scan(scan_id, phase="done", status="done", finished=now_iso())


def discover(settings: ScanSettings, inventory: Inventory, store: Store, scan_id: str, quiet: bool) -> list[Asset]:
    targets = build_target_set(settings.targets, scope_of(settings))
    for a in targets.excluded:
        store.add_event(scan_id, now_iso(), a, "on the do-not-touch list: not probed")
    raw = privileged()
    if not raw:
        store.add_event(scan_id, now_iso(), "", "no raw-socket privilege: TCP connect discovery and port scans")
        say("note: no raw-socket privilege (CAP_NET_RAW): host discovery and port scans use TCP connect", quiet)

    def log(msg: str) -> None:
        store.add_event(scan_id, now_iso(), "", msg)

    if settings.ping:
        facts = find_live_hosts(targets.addresses, raw=raw, log=log)
    else:
        from scanner.engine.discovery import HostFacts
        facts = {a: HostFacts(a, True, "assumed") for a in targets.addresses}
    prefixes = [p.lower().replace("-", ":") for p in settings.exclude_mac]
    live = []
    for a, f in facts.items():
        if not f.alive:
            continue
        if f.mac and any(f.mac.lower().startswith(p) for p in prefixes):
            store.add_event(scan_id, now_iso(), a, f"MAC {f.mac} on the do-not-touch list: not probed further")
            continue
        live.append(f)
    say(f"discovery: {len(live)} of {len(targets.addresses)} hosts answer", quiet)

    def fragile(address: str) -> bool:
        e = inventory.get(address)
        if e is None:
            return False
        return bool(e.fragile) or (e.cls or class_for_role(e.role)) == "medical-device"

    bar = Progress("ports", len(live))

    def one(f: Any) -> list[Service]:
        services = scan_services(f.address, raw=raw, fragile=fragile(f.address), extra_tcp=settings.extra_ports,
                                 hl7_ports=declared_hl7_ports(inventory.get(f.address)))
        bar.advance(note=f.address)
        return services

    with ThreadPoolExecutor(max_workers=DISCOVERY_WORKERS) as pool:
        all_services = list(pool.map(one, live))
    bar.close()
    from scanner.engine.assets import build_asset
    return [build_asset(f.address, svcs, inventory, name=targets.names.get(f.address, ""), mac=f.mac, how=f.how)
            for f, svcs in zip(live, all_services, strict=True)]


def run_pending(scan_id: str, store: Store, assets: list[Asset], checks: list[Any], settings: ScanSettings,
                creds: CredentialStore, quiet: bool) -> None:
    pending = {r["id"] for r in store.attempts(scan_id, "pending")}
    if not pending:
        return
    specs, _ = plan_attempts(scan_id, assets, checks,
                             credential_types=lambda a: {c.type for c in creds.items if c.matches(a)},
                             options=settings.check_options())
    specs = [s for s in specs if s.attempt_id in pending]
    versions = {c.meta.id: c.meta.version for c in checks}
    env = RunEnv(scope=scope_of(settings), credentials=creds, known_hosts=known_hosts_path(settings.known_hosts),
                 host_keys=settings.host_keys, vantage=settings.vantage)
    bar = Progress("checks", len(specs))

    def on_result(result: Any) -> None:
        store.record_attempt(scan_id, result, versions.get(result.check_id, ""), now_iso())
        bar.advance(note=f"{result.check_id} {result.address}")

    try:
        LocalExecutor(env, workers=settings.workers, host_cap=settings.host_cap).run(specs, on_result)
    finally:
        close_sessions(env)
        bar.close()
    for address, guard in env.guards.items():
        for event in guard.events:
            store.add_event(scan_id, now_iso(), address, event)
    counts: dict[str, int] = {}
    for r in store.attempts(scan_id):
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    say("attempts: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), quiet)


def db_waivers(store: Store) -> list[Waiver]:
    return [Waiver(rule=w["rule_id"], host=w["host"], owner=w["owner"], reason=w["reason"], expires=w["expires"],
                   port=w["port"]) for w in store.waivers()]


def refine_stored(scan_id: str, store: Store, inventory: Inventory) -> None:
    """After the checks: correct class and role from their facts (engine/assets.py refine_from_observations)
    before the rules judge, and say so in the scan's events."""
    observations = store.observations(scan_id)
    for asset in store.assets(scan_id):
        new = refine_from_observations(asset, observations, inventory.get(asset.address))
        if new is None:
            continue
        store.update_asset_class(scan_id, new)
        store.add_event(scan_id, now_iso(), asset.address,
                        f"classified from check facts: class {asset.cls} -> {new.cls}, role "
                        f"{asset.role or '-'} -> {new.role or '-'}")


def evaluate_stored(scan_id: str, store: Store, profile: Profile, now: str | None = None) -> None:
    """Judge stored observations; also how a stored scan is re-graded against another profile."""
    row = store.scan(scan_id)
    findings, results = evaluate_scan(profile, store.assets(scan_id), store.attempts(scan_id),
                                      store.observations(scan_id), waivers=db_waivers(store),
                                      vantage=row["settings"].get("vantage", "user"), now=now)
    store.save_verdicts(scan_id, findings, results)
    store.update_scan(scan_id, profile_id=profile.id, profile_version=profile.version,
                      profile_sha256=profile.sha256)
