"""phi.orthanc: does an Orthanc PACS answer its REST API, and DICOMweb, without a login?

GET /system without credentials: a JSON answer naming ApiVersion and DicomAet is Orthanc with its REST API open;
a 401 whose Basic realm is "Orthanc Secure Area" is Orthanc asking for a login (its well-known default accounts
are tried by creds.default, entry http-orthanc-orthanc); anything else is not Orthanc (not applicable).
When open: GET /statistics (counts of patients, studies, instances), GET /patients?since=0&limit=100 (how many
patient ids the list hands out, at most 100: the ids are counted, not kept) and one DICOMweb QIDO-RS search,
GET /dicom-web/studies?limit=1, whose answer gives the attribute KEYWORDS of the first study and whether a
patient attribute carried a value — never a value.

Every request is a GET, read through phi._http (8 s, 32 KiB of head, 256 KiB of body each).
"""

from __future__ import annotations

from typing import Any

from checks.phi import _http
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

META = CheckMeta(
    id="phi.orthanc",
    version="1.0",
    title_zh="Orthanc PACS REST/DICOMweb接口未鉴别访问",
    title_en="Orthanc PACS REST and DICOMweb API without authentication",
    granularity="service",
    services=("http", "http-alt", "https", "fs-agent"),
    ports=(8042,),
    capabilities=("AUTH", "PAUT"),
    timeout=40.0,
    description="GET /system, /statistics, /patients?limit=100 and DICOMweb /dicom-web/studies?limit=1 without "
                "credentials; records counts and attribute keywords only.",
)
REALM = "Orthanc Secure Area"
LIST_LIMIT = 100
# DICOM JSON tags of patient attributes: a value in any of them is patient data
PATIENT_TAGS = {"00100010": "PatientName", "00100020": "PatientID", "00100030": "PatientBirthDate",
                "00100040": "PatientSex", "00101010": "PatientAge", "00080050": "AccessionNumber",
                "00080090": "ReferringPhysicianName"}


def applies(asset: Asset, service: Service | None) -> bool:
    return service is not None and (service.port == 8042 or "orthanc" in service.product.lower())


def _tls(ctx: CheckContext) -> bool:
    return ctx.service is not None and (ctx.service.tunnel == "ssl" or ctx.service.name == "https")


def _keyword(tag: str) -> str:
    from pydicom.datadict import keyword_for_tag  # noqa: PLC0415  (pydicom: base dependency, dicom family)

    try:
        return keyword_for_tag(int(tag, 16)) or tag
    except (ValueError, TypeError):
        return "?"


def qido_summary(answer: Any) -> dict[str, Any]:
    """A QIDO-RS answer (DICOM JSON: a list of {tag: {vr, Value}}) -> count, keywords, phi_exposed. Values are
    looked at (non-empty or not), never returned."""
    if not isinstance(answer, list):
        return {"studies_returned": None, "attribute_keywords": [], "phi_exposed": False}
    first = answer[0] if answer and isinstance(answer[0], dict) else {}
    tags = sorted(str(t)[:8] for t in first)[:200]
    phi = any(isinstance(first.get(t), dict) and first[t].get("Value") not in (None, [], [""], [{}])
              for t in PATIENT_TAGS)
    return {"studies_returned": len(answer), "attribute_keywords": sorted({_keyword(t) for t in tags}),
            "phi_exposed": phi}


def _count(answer: Any, key: str) -> int | None:
    value = answer.get(key) if isinstance(answer, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run(ctx: CheckContext) -> list[Observation]:
    tls = _tls(ctx)
    system = _http.get(ctx, "/system", tls=tls)
    data: dict[str, Any] = {"tls": tls, "auth_required": None, "version": "", "api_version": None,
                            "patients_total": None, "studies_total": None, "instances_total": None,
                            "patients_listed": None, "dicomweb": None}
    if system.status == 401:
        challenge = " ".join(system.head.get_all("www-authenticate"))
        if REALM not in challenge:
            raise CheckNotApplicable(f"401 without Orthanc's realm ({challenge[:80]!r})")
        data["auth_required"] = True
        return [ctx.observation("orthanc", data)]
    info = system.json()
    if system.status != 200 or not isinstance(info, dict) or "ApiVersion" not in info or "DicomAet" not in info:
        raise CheckNotApplicable(f"GET /system answered HTTP {system.status} without Orthanc's system document")
    data.update(auth_required=False, version=str(info.get("Version", ""))[:40],
                api_version=_count(info, "ApiVersion"))
    stats = _http.get(ctx, "/statistics", tls=tls).json()
    data.update(patients_total=_count(stats, "CountPatients"), studies_total=_count(stats, "CountStudies"),
                instances_total=_count(stats, "CountInstances"))
    listed = _http.get(ctx, f"/patients?since=0&limit={LIST_LIMIT}", tls=tls)
    ids = listed.json()
    if listed.status == 200 and isinstance(ids, list):
        data["patients_listed"] = len(ids)
    del ids                                   # the patient ids go no further than the count
    qido = _http.get(ctx, "/dicom-web/studies?limit=1", tls=tls, accept="application/dicom+json")
    if qido.status == 200:
        data["dicomweb"] = {"status": 200, **qido_summary(qido.json())}
    else:
        data["dicomweb"] = {"status": qido.status, "studies_returned": None, "attribute_keywords": [],
                            "phi_exposed": False}
    if data["patients_total"] is None and data["patients_listed"] is None:
        raise CheckError("protocol", "Orthanc answered /system but neither /statistics nor /patients")
    return [ctx.observation("orthanc", data)]
