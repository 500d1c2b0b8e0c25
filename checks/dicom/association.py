"""dicom.association: does the DICOM service accept anyone, and who implements it?

One association with a random calling AE and a random called AE title proposing only Verification, a C-ECHO,
then release. When that is rejected and the inventory declares the device's real AE title, one more
association with that called AE (still a random calling AE). Never more: no AE-title guessing.
Facts: accepted or rejected (and why), which AE titles were random, the C-ECHO status, the peer's
implementation class UID and version name and the product/version they map to
(baselines/knowledge/dicom_implementations.yaml). Judged by medical.dicom.* rules.
"""

from __future__ import annotations

from pynetdicom.sop_class import Verification

from checks.dicom._common import DICOM_PORTS, candidate_called_aes, finish, implementation, open_association
from checks.dicom._common import applies as _applies
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, Observation, Service
from scanner.sdk.probes import random_ae
from scanner.sdk.versions import match_vulnerable

META = CheckMeta(
    id="dicom.association",
    version="1.0",
    title_zh="DICOM关联访问控制与实现版本",
    title_en="DICOM association access control and implementation version",
    granularity="service",
    services=("dicom",),
    ports=DICOM_PORTS,
    capabilities=("AUTH", "NAUT", "TXCF", "CSUP"),
    timeout=40.0,
    description="A-ASSOCIATE with random calling/called AE titles (Verification only), C-ECHO, release; "
                "records the peer's implementation class UID and version name.",
)


def applies(asset: Asset, service: Service | None) -> bool:
    return _applies(asset, service)


def run(ctx: CheckContext) -> list[Observation]:
    random_called = random_ae("TCMNOSUCH")
    first = open_association(ctx, [Verification], random_called)
    tries = [first]
    if first.result != "accepted":
        for called in candidate_called_aes(ctx.asset):
            tries.append(open_association(ctx, [Verification], called))
            break
    accepted = next((t for t in tries if t.result == "accepted"), None)
    echo_status: int | None = None
    try:
        if accepted is not None and accepted.assoc is not None and accepted.established:
            rsp = accepted.assoc.send_c_echo()
            echo_status = int(rsp.Status) if rsp is not None and "Status" in rsp else None
    finally:
        for t in tries:
            finish(t.assoc)
    if first.result == "aborted" and accepted is None:
        raise CheckError("protocol", "the peer aborted the association request")
    any_called = True if first.result == "accepted" else (
        False if first.reject and first.reject["reason"] == 7 and first.reject["source"] == 1 else None)
    if accepted is not None:
        any_calling: bool | None = True     # every calling AE we used was random
    elif first.reject and first.reject["reason"] == 3 and first.reject["source"] == 1:
        any_calling = False
    else:
        any_calling = None
    acc = accepted.acceptor if accepted else {}
    uid, name = acc.get("implementation_class_uid", ""), acc.get("implementation_version_name", "")
    impl = implementation(uid, name, ctx.knowledge.get("dicom_implementations", {}))
    # the one table of known-vulnerable versions (baselines/knowledge/vulnerable_versions.yaml)
    vulns = match_vulnerable(ctx.knowledge.get("vulnerable_versions") or {}, impl.get("product") or "",
                             impl.get("version") or "")["matches"] if impl.get("version") else []
    return [ctx.observation("association", {
        "tls": False,
        "result": accepted.result if accepted else first.result,
        "any_called_ae": any_called,
        "any_calling_ae": any_calling,
        "attempts": [{"called_ae": t.called_ae, "called_ae_random": t.called_ae == random_called,
                      "calling_ae_random": True, "result": t.result, "reject": t.reject} for t in tries],
        "echo_status": echo_status,
        "echo_ok": echo_status == 0,
        "implementation_class_uid": uid,
        "implementation_version_name": name,
        "implementation": impl,
        "vulnerabilities": vulns,
        "max_pdu": acc.get("max_pdu"),
    })]
