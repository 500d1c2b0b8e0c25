"""phi.elasticsearch: does an Elasticsearch/OpenSearch cluster answer without a login, and what does it index?

GET / without credentials: a JSON document with cluster_name and version is an open cluster (version.distribution
"opensearch" tells OpenSearch); a 401 with a Basic challenge is a cluster asking for a login; anything else is
not applicable. When open: GET /_cat/indices?format=json&h=index,docs.count: the number of indices and documents,
and the index NAMES that look clinical (knowledge table `clinical_index_names`, at most 20); hidden system indices
(a leading dot) are counted apart. No document is ever read. Every request is a GET through phi._http.
"""

from __future__ import annotations

import re
from typing import Any

from checks.phi import _http
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="phi.elasticsearch",
    version="1.0",
    title_zh="Elasticsearch/OpenSearch未鉴别访问",
    title_en="Elasticsearch/OpenSearch cluster without authentication",
    granularity="service",
    services=("elasticsearch", "wap-wsp", "http"),
    ports=(9200,),
    capabilities=("AUTH",),
    timeout=30.0,
    description="GET / and GET /_cat/indices (names and document counts) without credentials; clinical-looking "
                "index names from a sourced list. No document is read.",
)
MAX_NAMES = 20


def applies(asset: Asset, service: Service | None) -> bool:
    return service is not None and (service.port == 9200 or any(
        p in service.product.lower() for p in ("elasticsearch", "opensearch")))


def _tls(ctx: CheckContext) -> bool:
    return ctx.service is not None and (ctx.service.tunnel == "ssl" or ctx.service.name == "https")


def summarise_indices(rows: Any, patterns: list[re.Pattern[str]]) -> dict[str, Any] | None:
    """_cat/indices JSON rows -> {indices, system_indices, documents, clinical_indices}; None if not that shape."""
    if not isinstance(rows, list):
        return None
    names, system, documents = [], 0, 0
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("index"), str):
            return None
        name = row["index"][:120]
        count = row.get("docs.count")
        if isinstance(count, str) and count.isdigit():
            documents += int(count)
        if name.startswith("."):
            system += 1
        else:
            names.append(name)
    clinical = sorted(n for n in names if any(p.search(n) for p in patterns))
    return {"indices": len(names), "system_indices": system, "documents": documents,
            "clinical_indices": clinical[:MAX_NAMES], "clinical_truncated": len(clinical) > MAX_NAMES}


def run(ctx: CheckContext) -> list[Observation]:
    tls = _tls(ctx)
    root = _http.get(ctx, "/", tls=tls)
    info = root.json()
    data: dict[str, Any] = {"tls": tls, "product": "", "version": "", "auth_required": None, "indices": None,
                            "system_indices": None, "documents": None, "clinical_indices": [],
                            "clinical_truncated": False}
    if root.status == 401 and any("basic" in c.lower() for c in root.head.get_all("www-authenticate")):
        data["auth_required"] = True
        return [ctx.observation("elasticsearch", data)]
    version = info.get("version") if isinstance(info, dict) else None
    if root.status != 200 or not isinstance(version, dict) or "cluster_name" not in info:
        raise CheckNotApplicable(f"GET / answered HTTP {root.status} without a cluster document")
    data.update(auth_required=False, version=str(version.get("number", ""))[:40],
                product="opensearch" if version.get("distribution") == "opensearch" else "elasticsearch")
    table = ctx.knowledge.get("clinical_index_names") or {}
    patterns = [re.compile(str(p), re.IGNORECASE) for p in table.get("patterns") or []]
    listed = _http.get(ctx, "/_cat/indices?format=json&h=index,docs.count", tls=tls)
    summary = summarise_indices(listed.json(), patterns) if listed.status == 200 else None
    if summary is None:
        raise CheckError("protocol", f"_cat/indices answered HTTP {listed.status}"
                                     f"{' (over 256 KiB)' if listed.truncated else ''} without an index list")
    data.update(summary)
    return [ctx.observation("elasticsearch", data)]
