"""A scan from targets to findings, in phases stored as it goes so a killed scan resumes where it stopped:
created -> discovered -> planned -> ran -> done."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.assess.baseline import Profile, Waiver, load_profile
from scanner.assess.evaluate import evaluate_scan
from scanner.core.errors import TcmscanError, UsageError
from scanner.core.models import Asset, AttemptSpec
from scanner.core.scope import Scope
from scanner.engine.assets import build_asset, refine_from_observations
from scanner.engine.discovery import HostFacts, find_live_hosts, privileged, scan_services
from scanner.engine.inventory import (
    Inventory,
    InventoryEntry,
    class_for_role,
    declared_hl7_ports,
    load_inventory,
)
from scanner.engine.plugins import Registry, load_registry
from scanner.engine.progress import Progress, say
from scanner.engine.runner import LocalExecutor, SpecFeed, plan_attempts
from scanner.engine.settings import ScanSettings, settings_from_stored  # ScanSettings re-exported
from scanner.engine.targets import TargetSet, build_target_set
from scanner.sdk.context import RunEnv
from scanner.sdk.credentials import CredentialStore, load_credentials
from scanner.sdk.ssh_session import close_sessions
from scanner.store import Store

# Hosts whose ports are scanned at once.  nmap mostly waits there (silent UDP ports, -sV probe waits, a fragile
# host's pace); past 12 the two cores contend (lab: 8 -> 25 s, 12 -> 18 s, 16 -> 18 s with every host slower;
# docs/lab.md "How discovery names a service").  Fragile hosts keep their own pace whatever this is.
DISCOVERY_WORKERS = 12


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
    timed = PhaseClock(store, scan_id)
    checks = registry.select(settings.checks)
    if phase == "created":
        # A host's checks start as soon as its own ports are known, while other hosts are still being
        # discovered. Each host is stored with its plan in one transaction: a resumed scan keeps the hosts it
        # stored, runs their pending attempts and discovers only the others.
        discover_and_run(scan_id, store, settings, inventory, creds, checks, quiet, timed)
        store.update_scan(scan_id, phase="ran")
        phase = "ran"
    if phase == "discovered":       # a scan an earlier tcmscan stopped between its discovery and planning
        assets = store.assets(scan_id)
        with store.tx():
            for asset in assets:
                plan_host(scan_id, store, asset, checks, creds, settings)
        store.update_scan(scan_id, phase="planned")
        phase = "planned"
    if phase == "planned":
        with timed("checks"):
            run_pending(scan_id, store, store.assets(scan_id), checks, settings, creds, quiet)
        store.update_scan(scan_id, phase="ran")
        phase = "ran"
    if phase == "ran":
        with timed("evaluation"):
            refine_stored(scan_id, store, inventory)
            evaluate_stored(scan_id, store, profile)
        store.update_scan(scan_id, phase="done", status="done", finished=now_iso())


class PhaseClock:
    """Each phase's wall time as a scan event ("phase checks: 41.3 s"): where a scan's time went, for the
    operator and for bench/bench_lab_scan.py. Discovery and checks overlap (a host's checks start once its own
    ports are known): "discovery" ends when the last host is stored, "checks" when the last attempt is. A
    phase a resumed scan skips has no event."""

    def __init__(self, store: Store, scan_id: str) -> None:
        self.store, self.scan_id = store, scan_id

    def record(self, name: str, seconds: float) -> None:
        self.store.add_event(self.scan_id, now_iso(), "", f"phase {name}: {seconds:.1f} s")

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.record(name, time.monotonic() - start)


def credential_types(creds: CredentialStore) -> Callable[[str], set[str]]:
    return lambda address: {c.type for c in creds.items if c.matches(address)}


def plan_host(scan_id: str, store: Store, asset: Asset, checks: list[Any], creds: CredentialStore,
              settings: ScanSettings) -> list[AttemptSpec]:
    """Store one host with its plan (its attempts pending, the decided ones recorded) in one transaction."""
    specs, decided = plan_attempts(scan_id, [asset], checks, credential_types=credential_types(creds),
                                   options=settings.check_options())
    versions = {c.meta.id: c.meta.version for c in checks}
    with store.tx():
        store.add_asset(scan_id, asset)
        store.add_pending(scan_id, [(s.attempt_id, s.check_id, versions[s.check_id], s.asset["address"], s.port)
                                    for s in specs])
        for d in decided:
            store.record_attempt(scan_id, d, versions[d.check_id], now_iso())
    return specs


class DiscoveryFeed:
    """The runner's attempts, host by host as discovery stores them (scanner.engine.runner.SpecFeed). Store
    writes happen in take(), on the runner's thread; discovery's threads only hand over assets."""

    def __init__(self, scan_id: str, store: Store, checks: list[Any], creds: CredentialStore,
                 settings: ScanSettings, first: list[AttemptSpec], futures: list[Future], found: queue.Queue,
                 on_planned: Callable[[Asset, int], None]) -> None:
        self.scan_id, self.store, self.checks, self.creds, self.settings = scan_id, store, checks, creds, settings
        self.ready, self.futures, self.found, self.on_planned = list(first), futures, found, on_planned

    def take(self) -> list[AttemptSpec]:
        out, self.ready = self.ready, []
        while True:
            try:
                asset = self.found.get_nowait()
            except queue.Empty:
                break
            specs = plan_host(self.scan_id, self.store, asset, self.checks, self.creds, self.settings)
            self.on_planned(asset, len(specs))
            out += specs
        for f in self.futures:          # a host whose discovery failed (nmap failed) stops the scan
            if f.done() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        return out

    def exhausted(self) -> bool:
        return all(f.done() for f in self.futures) and self.found.empty() and not self.ready


def discover_and_run(scan_id: str, store: Store, settings: ScanSettings, inventory: Inventory,
                     creds: CredentialStore, checks: list[Any], quiet: bool, timed: PhaseClock) -> None:
    start = time.monotonic()
    stored = store.assets(scan_id)           # hosts stored (with their plans) before an interruption
    first = pending_specs(scan_id, store, stored, checks, creds, settings)
    targets, live, raw = find_hosts(settings, store, scan_id, quiet)
    known = {a.address for a in stored}
    todo = [f for f in live if f.address not in known]
    if known:
        say(f"resuming: {len(known)} hosts discovered before, {len(todo)} left", quiet)
    bar = Progress("scan", len(first))
    hosts_done = [len(known)]
    found: queue.Queue[Asset] = queue.Queue()

    def one(f: HostFacts) -> None:
        found.put(host_asset(f, targets.names.get(f.address, ""), settings, inventory, raw))

    def on_planned(asset: Asset, n: int) -> None:
        bar.total += n
        hosts_done[0] += 1
        if hosts_done[0] == len(known) + len(todo):
            timed.record("discovery", time.monotonic() - start)

    pool = ThreadPoolExecutor(max_workers=DISCOVERY_WORKERS)
    futures = [pool.submit(one, f) for f in todo]
    if not todo:
        timed.record("discovery", time.monotonic() - start)
    feed = DiscoveryFeed(scan_id, store, checks, creds, settings, first, futures, found, on_planned)
    try:
        run_attempts(scan_id, store, checks, settings, creds, feed, bar, quiet,
                     note=lambda: f"hosts {hosts_done[0]}/{len(known) + len(todo)} ")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    timed.record("checks", time.monotonic() - start)


def run_env(settings: ScanSettings, creds: CredentialStore) -> RunEnv:
    return RunEnv(scope=scope_of(settings), credentials=creds, known_hosts=known_hosts_path(settings.known_hosts),
                  host_keys=settings.host_keys, vantage=settings.vantage)


def find_hosts(settings: ScanSettings, store: Store, scan_id: str, quiet: bool
               ) -> tuple[TargetSet, list[HostFacts], bool]:
    """The targets, those that answer (minus the do-not-touch MACs), and whether raw sockets are ours."""
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
    return targets, live, raw


def host_asset(f: HostFacts, name: str, settings: ScanSettings, inventory: Inventory, raw: bool) -> Asset:
    """One live host's ports and services (scan_services), as an asset with the inventory's facts."""
    entry = inventory.get(f.address)
    fragile = entry is not None and (bool(entry.fragile) or (entry.cls or class_for_role(entry.role))
                                     == "medical-device")
    services = scan_services(f.address, raw=raw, fragile=fragile, extra_tcp=settings.extra_ports,
                             hl7_ports=declared_hl7_ports(entry))
    return build_asset(f.address, services, inventory, name=name, mac=f.mac, how=f.how)


def run_pending(scan_id: str, store: Store, assets: list[Asset], checks: list[Any], settings: ScanSettings,
                creds: CredentialStore, quiet: bool) -> None:
    specs = pending_specs(scan_id, store, assets, checks, creds, settings)
    if specs:
        run_attempts(scan_id, store, checks, settings, creds, specs, Progress("checks", len(specs)), quiet)


def pending_specs(scan_id: str, store: Store, assets: list[Asset], checks: list[Any], creds: CredentialStore,
                  settings: ScanSettings) -> list[AttemptSpec]:
    """The stored hosts' attempts still pending, planned again (a plan is deterministic: same ids)."""
    pending = {r["id"] for r in store.attempts(scan_id, "pending")}
    if not pending:
        return []
    specs, _ = plan_attempts(scan_id, assets, checks, credential_types=credential_types(creds),
                             options=settings.check_options())
    return [s for s in specs if s.attempt_id in pending]


def run_attempts(scan_id: str, store: Store, checks: list[Any], settings: ScanSettings, creds: CredentialStore,
                 specs: list[AttemptSpec] | SpecFeed, bar: Progress, quiet: bool,
                 note: Callable[[], str] = lambda: "") -> None:
    """Run the attempts on this machine, each result stored as it comes; then the hosts' guard events."""
    versions = {c.meta.id: c.meta.version for c in checks}
    env = run_env(settings, creds)

    def on_result(result: Any) -> None:
        store.record_attempt(scan_id, result, versions.get(result.check_id, ""), now_iso())
        bar.advance(note=f"{note()}{result.check_id} {result.address}")

    try:
        LocalExecutor(env, workers=settings.workers, host_cap=settings.host_cap).run(specs, on_result)
    finally:
        close_sessions(env)
        bar.close()
    finish_checks(scan_id, store, env, quiet)


def finish_checks(scan_id: str, store: Store, env: RunEnv, quiet: bool) -> None:
    """The hosts' guard events (pacing, devices that stopped answering) into the scan, and the tally."""
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
