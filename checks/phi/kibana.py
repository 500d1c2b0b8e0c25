"""phi.kibana: does Kibana (or OpenSearch Dashboards) show its data without a login?

GET /api/status without credentials: a JSON status document with a version is Kibana answering without a login
(no security, or anonymous access); a 401 is Kibana asking for one; anything else is not applicable. One GET
through phi._http; nothing else is read.
"""

from __future__ import annotations

from typing import Any

from checks.phi import _http
from scanner.sdk import Asset, CheckContext, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="phi.kibana",
    version="1.0",
    title_zh="Kibana未鉴别访问",
    title_en="Kibana without a login",
    granularity="service",
    services=("http", "esmagent"),
    ports=(5601,),
    capabilities=("AUTH",),
    timeout=20.0,
    description="GET /api/status without credentials: answered (version) or 401.",
)


def applies(asset: Asset, service: Service | None) -> bool:
    return service is not None and (service.port == 5601 or "kibana" in service.product.lower())


def run(ctx: CheckContext) -> list[Observation]:
    tls = ctx.service is not None and (ctx.service.tunnel == "ssl" or ctx.service.name == "https")
    r = _http.get(ctx, "/api/status", tls=tls)
    data: dict[str, Any] = {"tls": tls, "auth_required": None, "version": "", "name": ""}
    if r.status == 401:
        data["auth_required"] = True
        return [ctx.observation("kibana", data)]
    doc = r.json()
    version = doc.get("version") if isinstance(doc, dict) else None
    if r.status != 200 or not isinstance(version, dict) or "number" not in version:
        raise CheckNotApplicable(f"GET /api/status answered HTTP {r.status} without Kibana's status document")
    data.update(auth_required=False, version=str(version["number"])[:40], name=str(doc.get("name", ""))[:80])
    return [ctx.observation("kibana", data)]
