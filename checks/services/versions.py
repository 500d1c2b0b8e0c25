"""services.versions: service versions from banners (nmap -sV product/version) matched against the offline
table baselines/knowledge/vulnerable_versions.yaml. Sends no packet: it reads what discovery recorded.

A banner is weak evidence: Debian and others backport security fixes without changing the upstream
version. When the banner carries a Debian revision (OpenSSH: "9.2p1 Debian 2+deb12u3") and the table knows
the Debian version that fixed the CVE, the match is suppressed when the installed revision is at least that
one (dpkg ordering); every other match is reported with confidence "low" and says so.
Observation key `versions`: {product, version, upstream, distro_revision, matches: [...], suppressed: [...]}.
"""

from __future__ import annotations

from scanner.sdk import Asset, CheckContext, CheckMeta, Observation, Service
from scanner.sdk.versions import match_vulnerable

META = CheckMeta(
    id="services.versions",
    version="1.0",
    title_zh="服务版本与已知漏洞（标识比对）",
    title_en="Service versions matched against known-vulnerable versions (banner)",
    granularity="service",
    timeout=5.0,
    description="Offline: nmap's product/version per port against vulnerable_versions.yaml; no traffic.",
)
def applies(asset: Asset, service: Service | None) -> bool:
    return bool(service and service.product and service.version)


def run(ctx: CheckContext) -> list[Observation]:
    svc = ctx.service
    assert svc is not None
    data = match_vulnerable(ctx.knowledge.get("vulnerable_versions") or {}, svc.product, svc.version)
    data["name"] = svc.name
    return [ctx.observation("versions", data)]
