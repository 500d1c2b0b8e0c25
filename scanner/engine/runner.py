"""Plans (check, asset, port) attempts and runs them behind a small executor interface.

An attempt is a plain `AttemptSpec` and its result a plain `AttemptResult`, so another executor (a
distributed task engine's workers) can run the same `execute_attempt` function elsewhere.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Protocol

from scanner.core.models import Asset, AttemptResult, AttemptSpec, Observation, attempt_id
from scanner.engine import library_logs
from scanner.engine.plugins import Check, Registry, load_registry
from scanner.sdk.context import CheckContext, RunEnv
from scanner.sdk.errors import CheckError, CheckNotApplicable

DEFAULT_HOST_CAP = 4        # concurrent attempts per ordinary host
FRAGILE_HOST_CAP = 1        # safe mode: one connection at a time per device
DEFAULT_WORKERS = 16


def plan_attempts(scan_id: str, assets: Iterable[Asset], checks: Iterable[Check], *,
                  credential_types: Callable[[str], set[str]] = lambda _a: set(),
                  timeout_scale: float = 1.0, options: dict | None = None
                  ) -> tuple[list[AttemptSpec], list[AttemptResult]]:
    """Return the attempts to run and the records of those decided without running (n/a, skipped)."""
    runnable: list[AttemptSpec] = []
    decided: list[AttemptResult] = []
    for asset in assets:
        safe = asset.fragile
        for check in checks:
            m = check.meta

            def decide(status: str, reason: str, detail: str, port: int | None = None, proto: str = "",
                       m=m, asset=asset) -> None:
                proto = proto or (m.proto if m.proto != "any" else "tcp")
                decided.append(AttemptResult(attempt_id(scan_id, m.id, asset.address, port, proto), m.id,
                                             asset.address, port, status, reason, detail))

            if not check.applies_to_asset(asset):
                decide("not_applicable", "", f"applies to {', '.join(m.classes)}, asset is {asset.cls}")
                continue
            if m.granularity == "host":
                targets: list[tuple[int | None, str]] = [(None, m.proto)] if check.refine(asset, None) else []
            else:
                targets = [(s.port, s.proto) for s in check.matching_services(asset)]
            if not targets:
                decide("not_applicable", "", "no matching service" if m.granularity == "service" else "not applicable")
                continue
            for port, proto in targets:
                if safe and not check.allowed_in_safe_mode(asset):
                    decide("skipped", "safe-mode", "intrusive check not run on a fragile/medical asset", port, proto)
                elif m.needs_credentials and m.needs_credentials not in credential_types(asset.address):
                    decide("skipped", "no-credentials", f"no {m.needs_credentials} credentials for this host", port,
                           proto)
                else:
                    runnable.append(AttemptSpec(scan_id=scan_id, check_id=m.id, asset=asset.to_dict(), port=port,
                                                proto=proto, timeout=m.timeout * timeout_scale, safe_mode=safe,
                                                options=dict(options or {})))
    return runnable, decided


def execute_attempt(spec: AttemptSpec, env: RunEnv, registry: Registry | None = None) -> AttemptResult:
    """Run one attempt. Never raises: every outcome is a result with a status and a reason; what libraries
    logged meanwhile (paramiko's "Exception (client): ...") is added to its detail, never printed."""
    with library_logs.capture() as said:
        result = _execute(spec, env, registry)
    result.detail = said.annotate(result.detail)
    return result


def _execute(spec: AttemptSpec, env: RunEnv, registry: Registry | None) -> AttemptResult:
    registry = registry or load_registry()
    asset = Asset.from_dict(spec.asset)
    result = AttemptResult(spec.attempt_id, spec.check_id, asset.address, spec.port, "error")
    start = time.monotonic()
    check = registry.get(spec.check_id)
    try:
        if check is None:
            raise CheckError("unsupported", f"check {spec.check_id} is not installed here")
        service = asset.service(spec.port, spec.proto) if spec.port is not None else None
        ctx = CheckContext(asset=asset, service=service, check_id=spec.check_id, env=env, timeout=spec.timeout,
                           safe_mode=spec.safe_mode, options=spec.options)
        if ctx.guard.stopped_reason:
            raise CheckError("device-stopped", ctx.guard.stopped_reason)
        try:
            observations = check.module.run(ctx)
        finally:
            ctx.close_all()
        if not isinstance(observations, list) or not all(isinstance(o, Observation) for o in observations):
            raise TypeError("run() must return a list of Observation")
        result.status, result.observations = "completed", observations
    except CheckNotApplicable as e:
        result.status, result.detail = "not_applicable", str(e)
    except CheckError as e:
        result.reason, result.detail = e.reason, e.detail
    except Exception as e:  # a bug in a check is recorded as such, never read as a pass
        tb = traceback.extract_tb(e.__traceback__)[-1]
        result.reason = "bug"
        result.detail = f"{type(e).__name__}: {e} (at {tb.filename.rsplit('/', 1)[-1]}:{tb.lineno})"
    result.duration = round(time.monotonic() - start, 4)
    return result


class SpecFeed(Protocol):
    """Attempts that become known while a run goes on (a host's, once discovery has its ports)."""

    def take(self) -> list[AttemptSpec]:
        """The attempts ready since the last call (never blocks; raises what stopped their source)."""
        ...

    def exhausted(self) -> bool:
        """No attempt will come any more."""
        ...


class FixedFeed:
    """A feed of a list known up front."""

    def __init__(self, specs: list[AttemptSpec]) -> None:
        self._specs = list(specs)

    def take(self) -> list[AttemptSpec]:
        out, self._specs = self._specs, []
        return out

    def exhausted(self) -> bool:
        return not self._specs


class Executor(Protocol):
    def run(self, specs: list[AttemptSpec] | SpecFeed, on_result: Callable[[AttemptResult], None]) -> None: ...


class LocalExecutor:
    """Threads on this machine, a per-host concurrency cap, and a hard per-attempt deadline.

    A thread cannot be killed: an attempt past its deadline is recorded as a timeout and its thread
    (a daemon) is abandoned; its late result is ignored.
    """

    def __init__(self, env: RunEnv, workers: int = DEFAULT_WORKERS, host_cap: int = DEFAULT_HOST_CAP,
                 grace: float = 5.0) -> None:
        self.env = env
        self.workers = max(1, workers)
        self.host_cap = max(1, host_cap)
        self.grace = grace

    def run(self, specs: list[AttemptSpec] | SpecFeed, on_result: Callable[[AttemptResult], None]) -> None:
        feed = FixedFeed(specs) if isinstance(specs, list) else specs
        pending: list[AttemptSpec] = []
        done_q: queue.Queue[tuple[str, AttemptResult]] = queue.Queue()
        running: dict[str, tuple[AttemptSpec, float]] = {}    # attempt id -> (spec, deadline)
        per_host: dict[str, int] = {}

        def cap(spec: AttemptSpec) -> int:
            return FRAGILE_HOST_CAP if spec.safe_mode else self.host_cap

        def worker(spec: AttemptSpec) -> None:
            done_q.put((spec.attempt_id, execute_attempt(spec, self.env)))

        while True:
            pending += feed.take()
            if not (pending or running) and feed.exhausted():
                break
            i = 0
            while i < len(pending) and len(running) < self.workers:
                spec = pending[i]
                host = spec.asset["address"]
                if per_host.get(host, 0) < cap(spec):
                    pending.pop(i)
                    per_host[host] = per_host.get(host, 0) + 1
                    running[spec.attempt_id] = (spec, time.monotonic() + spec.timeout + self.grace)
                    threading.Thread(target=worker, args=(spec,), daemon=True,
                                     name=f"attempt {spec.check_id} {host}").start()
                else:
                    i += 1
            try:
                aid, res = done_q.get(timeout=0.2)
                if aid in running:
                    spec, _ = running.pop(aid)
                    per_host[spec.asset["address"]] -= 1
                    on_result(res)
            except queue.Empty:
                pass
            now = time.monotonic()
            for aid, (spec, deadline) in list(running.items()):
                if now > deadline:
                    running.pop(aid)
                    per_host[spec.asset["address"]] -= 1
                    on_result(AttemptResult(aid, spec.check_id, spec.asset["address"], spec.port, "error",
                                            "timeout", f"no result within {spec.timeout:.0f} s"))
