"""Check plug-ins: metadata, discovery through the `tcmscan.checks` entry-point group, applicability.

A check is a module (built-in or a hospital's own package) with
    META = CheckMeta(id=..., ...)
    def run(ctx: CheckContext) -> list[Observation]
and optionally `def applies(asset, service) -> bool` to refine the metadata's matching.
It registers in its package's pyproject under [project.entry-points."tcmscan.checks"] as
    "<check id>" = "<module path>"
Built-ins register exactly like third-party checks.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from scanner.models import ASSET_CLASSES, Asset, Service

ENTRY_POINT_GROUP = "tcmscan.checks"
CHECK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$")


@dataclass(frozen=True)
class CheckMeta:
    id: str
    version: str
    title_zh: str
    title_en: str
    scope: str = "service"                  # "service": one attempt per matching port; "host": one per asset
    classes: tuple[str, ...] = ()           # asset classes it applies to; () = all
    services: tuple[str, ...] = ()          # service names (nmap/probe), e.g. ("ssh",); () with no ports = all
    ports: tuple[int, ...] = ()             # ports it applies to whatever the service name
    tls: bool = False                       # applies to any port nmap saw wrapped in TLS
    proto: str = "tcp"                      # "tcp", "udp" or "any"
    intrusive: bool = False                 # logs in, sends more than a handshake: never in safe mode
    # ... unless the asset's inventory entry sets this field to true (e.g. "default_credentials_allowed"):
    # the hospital's explicit permission to run this intrusive check on that fragile/medical asset.
    safe_mode_opt_in: str = ""
    needs_credentials: str = ""             # credential type it needs ("ssh"), "" for none
    capabilities: tuple[str, ...] = ()      # IEC TR 80001-2-2 capabilities it tests (TXCF, AUTH, ...)
    timeout: float = 30.0
    description: str = ""

    def __post_init__(self) -> None:
        if not CHECK_ID.match(self.id):
            raise ValueError(f"check id {self.id!r} must be dotted lower-case, e.g. 'tls.protocols'")
        if self.scope not in ("service", "host"):
            raise ValueError(f"check {self.id}: scope must be 'service' or 'host'")
        bad = set(self.classes) - set(ASSET_CLASSES)
        if bad:
            raise ValueError(f"check {self.id}: unknown asset classes {sorted(bad)}")

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["family"] = self.family
        return d


@dataclass
class Check:
    meta: CheckMeta
    module: ModuleType
    entry_point: str

    def applies_to_asset(self, asset: Asset) -> bool:
        return not self.meta.classes or asset.cls in self.meta.classes

    def matching_services(self, asset: Asset) -> list[Service]:
        m = self.meta
        out = []
        for s in asset.services:
            if m.proto != "any" and s.proto != m.proto:
                continue
            by_name = s.name in m.services
            by_port = s.port in m.ports
            by_tls = m.tls and (s.tunnel == "ssl" or s.name in ("https", "ssl", "dicom-tls", "ldaps", "imaps",
                                                                   "pop3s", "smtps"))
            everything = not (m.services or m.ports or m.tls)
            if everything or by_name or by_port or by_tls:
                if self.refine(asset, s):
                    out.append(s)
        return out

    def allowed_in_safe_mode(self, asset: Asset) -> bool:
        """An intrusive check runs on a fragile asset only with the inventory's explicit opt-in."""
        return not self.meta.intrusive or bool(
            self.meta.safe_mode_opt_in and asset.extra.get(self.meta.safe_mode_opt_in) is True)

    def refine(self, asset: Asset, service: Service | None) -> bool:
        fn = getattr(self.module, "applies", None)
        return True if fn is None else bool(fn(asset, service))


@dataclass
class Registry:
    checks: dict[str, Check] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)    # entry-point name -> why it failed to load

    def get(self, check_id: str) -> Check | None:
        return self.checks.get(check_id)

    def select(self, patterns: list[str] | None) -> list[Check]:
        """Checks whose id equals or starts with one of the patterns (`tls` selects `tls.*`)."""
        if not patterns:
            return list(self.checks.values())
        return [c for c in self.checks.values()
                if any(c.meta.id == p or c.meta.id.startswith(p.rstrip(".*") + ".") for p in patterns)]


@functools.cache
def load_registry() -> Registry:
    reg = Registry()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            module = ep.load()
            meta = module.META
            if not isinstance(meta, CheckMeta):
                raise TypeError("META is not a CheckMeta")
            if not callable(getattr(module, "run", None)):
                raise TypeError("no run(ctx) function")
            if meta.id != ep.name:
                raise ValueError(f"entry point name {ep.name!r} differs from META.id {meta.id!r}")
        except Exception as e:  # a broken plug-in must not stop the others; it is reported instead
            reg.errors[ep.name] = f"{type(e).__name__}: {e}"
            continue
        if meta.id in reg.checks:
            reg.errors[ep.name] = f"duplicate check id {meta.id} (also {reg.checks[meta.id].entry_point})"
            continue
        reg.checks[meta.id] = Check(meta=meta, module=module, entry_point=ep.value)
    return reg
