"""phi.fhir: does a FHIR server answer a Patient search without a token?

For each base path of the knowledge table `fhir_paths` (a short sourced list), GET [base]/metadata until one
answers a CapabilityStatement (R4+) or Conformance (DSTU2): its FHIR version, software name and the security
services it declares (SMART-on-FHIR, OAuth). Then ONE search, GET [base]/Patient?_summary=count, which asks for
the number of matches only (a Bundle with `total`, no resource): its HTTP status says whether a token was
needed; the total is the only number kept. Every request is a GET through phi._http.
"""

from __future__ import annotations

from typing import Any

from checks.phi import _http
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="phi.fhir",
    version="1.0",
    title_zh="FHIR服务器患者检索未鉴别访问",
    title_en="FHIR server answering Patient searches without a token",
    granularity="service",
    services=("http", "http-alt", "http-proxy", "https", "https-alt"),
    ports=(80, 443, 8080, 8443),
    capabilities=("AUTH", "PAUT"),
    timeout=60.0,
    description="GET [base]/metadata on a few well-known base paths; where a CapabilityStatement answers, one "
                "GET [base]/Patient?_summary=count (the number of patients, no resource).",
)
FHIR_JSON = "application/fhir+json, application/json;q=0.9"


def applies(asset: Asset, service: Service | None) -> bool:
    return service is not None and service.proto == "tcp"


def _tls(ctx: CheckContext) -> bool:
    s = ctx.service
    return s is not None and (s.tunnel == "ssl" or s.name.startswith("https") or s.port in (443, 8443))


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x[:50] if isinstance(x, list) else []


def capability(doc: Any) -> dict[str, Any] | None:
    """A CapabilityStatement/Conformance -> {fhir_version, software, security_services}; None otherwise."""
    if not isinstance(doc, dict) or doc.get("resourceType") not in ("CapabilityStatement", "Conformance"):
        return None
    software = _dict(doc.get("software"))
    services: set[str] = set()
    for rest in _list(doc.get("rest")):
        for svc in _list(_dict(_dict(rest).get("security")).get("service")):
            for coding in _list(_dict(svc).get("coding")):
                code = _dict(coding).get("code")
                if isinstance(code, str):
                    services.add(code[:40])
    return {"fhir_version": str(doc.get("fhirVersion", ""))[:20], "software": str(software.get("name", ""))[:80],
            "security_services": sorted(services)[:10]}


def bundle_total(doc: Any) -> int | None:
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        total = doc.get("total")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    return None


def run(ctx: CheckContext) -> list[Observation]:
    paths = [str(p) for p in (ctx.knowledge.get("fhir_paths") or {}).get("paths") or []]
    if not paths:
        raise CheckError("unsupported", "knowledge table fhir_paths lists no paths")
    tls = _tls(ctx)
    for base in paths:
        meta = _http.get(ctx, f"{base}/metadata", tls=tls, accept=FHIR_JSON)
        cap = capability(meta.json()) if meta.status == 200 else None
        if cap is None:
            continue
        search = _http.get(ctx, f"{base}/Patient?_summary=count", tls=tls, accept=FHIR_JSON)
        data = {"base": base or "/", "tls": tls, **cap,
                "patient_search": {"status": search.status, "total": bundle_total(search.json())
                                   if search.status == 200 else None}}
        return [ctx.observation("fhir", data)]
    raise CheckNotApplicable(f"no FHIR CapabilityStatement at {', '.join(p + '/metadata' for p in paths)}")
