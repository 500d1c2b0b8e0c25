"""The lab's hostile services (lab/hosts/_hostile/hostile_services.py, the program the lab's fault-injection hosts
run) served on a loopback address of their own, so a check's reaction to each behaviour is tested in seconds
without the lab."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from scanner.core.models import Asset, Service
from scanner.sdk.context import CheckContext, RunEnv

PROGRAM = Path(__file__).resolve().parents[2] / "lab" / "hosts" / "_hostile" / "hostile_services.py"


def program() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostile_services", PROGRAM)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def loopback_address() -> str:
    return f"127.{random.randint(60, 99)}.{random.randint(1, 250)}.{random.randint(2, 250)}"


class Hostile:
    """One behaviour on `port` (tcp, or udp for the SNMP ones) of a fresh loopback address, in a thread of its
    own; `port` is also the port whose protocol greeting drip and flood send."""

    def __init__(self, behaviour: str, port: int, *, tls: dict[str, str] | None = None) -> None:
        self.mod = program()
        self.behaviour, self.port, self.tls = behaviour, port, tls
        self.address = loopback_address()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hostile:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError(f"{self.behaviour} did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *_a: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._start(loop))
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(lambda _loop, _ctx: None)
        mod = self.mod
        if self.behaviour in mod.UDP_BEHAVIOURS:
            await loop.create_datagram_endpoint(lambda: mod.SnmpProtocol(self.behaviour),
                                                local_addr=(self.address, self.port))
            return
        behaviours = mod.Behaviours(self.tls)
        handler = getattr(behaviours, self.behaviour.replace("-", "_"))
        if self.behaviour == "http-gzip-bomb":
            behaviours.bomb()
        ssl_ctx = None
        if self.behaviour == "tls-absurd-certs":
            import ssl  # noqa: PLC0415

            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(self.tls["chain"], self.tls["key"])  # type: ignore[index]

        async def serve(reader: Any, writer: Any) -> None:
            try:
                await handler(reader, writer, self.port)
            except Exception:  # noqa: BLE001 - a client hanging up is its right
                pass
            finally:
                writer.transport.abort()

        await asyncio.start_server(serve, self.address, self.port, ssl=ssl_ctx, reuse_address=True)


def context(address: str, port: int | None, name: str, check_id: str, *, timeout: float, proto: str = "tcp",
            credentials: Any = None) -> CheckContext:
    """A check context for one attempt on `address` (scope: that address alone)."""
    services = [Service(port=port, proto=proto, name=name)] if port is not None else []
    asset = Asset(address=address, services=services)
    env = RunEnv(scope=[f"{address}/32"])
    if credentials is not None:
        env.credentials = credentials
    return CheckContext(asset=asset, service=services[0] if services else None, check_id=check_id, env=env,
                        timeout=timeout, safe_mode=False)


def finishes(fn: Any, within: float) -> tuple[Any, BaseException | None, float]:
    """Run fn() in a thread of its own: (result, exception, seconds). A call still running after `within` s fails
    the test instead of hanging the suite (its daemon thread is left behind)."""
    import time  # noqa: PLC0415

    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t0 = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(within)
    if thread.is_alive():
        raise AssertionError(f"still running after {within:.0f} s: the peer holds it")
    return out.get("result"), out.get("error"), time.monotonic() - t0
