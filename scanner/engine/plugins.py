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
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType

from scanner.core.models import Asset, Service
from scanner.sdk.meta import CheckMeta

ENTRY_POINT_GROUP = "tcmscan.checks"


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
