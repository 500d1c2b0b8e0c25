"""dicom.cfind: does a patient-level C-FIND without credentials return patient data?

One association (random calling AE; random called AE, or the inventory's AE title when the random one is
rejected) proposing only Patient Root Query/Retrieve FIND. One C-FIND at query level PATIENT with
PatientID '*' (wildcard: every patient) and PatientName as a return key. We decode AT MOST ONE pending
result, then send C-CANCEL and release. Further responses the peer already sent are dropped undecoded.

The observation records only `phi_exposed` (a result carried at least one non-empty patient attribute),
the number of attributes, and their KEYWORDS — never a value. Values live only in local variables of
this function and are discarded with the dataset.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind as PatientRootFind

from checks.dicom._common import DICOM_PORTS, candidate_called_aes, finish, open_association
from checks.dicom._common import applies as _applies
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, Observation, Service
from scanner.sdk.probes import random_ae

META = CheckMeta(
    id="dicom.cfind",
    version="1.0",
    title_zh="DICOM未鉴别患者级C-FIND查询",
    title_en="Unauthenticated patient-level DICOM C-FIND",
    granularity="service",
    services=("dicom",),
    ports=DICOM_PORTS,
    capabilities=("AUTH", "NAUT", "PAUT"),
    timeout=40.0,
    description="One Patient Root C-FIND (PATIENT level, PatientID=*), at most one result read, then "
                "C-CANCEL and release; records whether PHI came back and attribute keywords only.",
)
# Attributes that describe the query rather than a patient.
NOT_PHI = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability",
           "TimezoneOffsetFromUTC"}
MESSAGE_ID = 1


def applies(asset: Asset, service: Service | None) -> bool:
    return _applies(asset, service)


def query() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = "*"
    ds.PatientName = ""
    return ds


def summarise(identifier: Dataset | None) -> tuple[bool, list[str]]:
    """(phi_exposed, keywords of attributes that carry a value). Values are looked at, never returned."""
    if identifier is None:
        return False, []
    keywords = []
    for elem in identifier:
        if elem.tag.is_private or elem.tag.element == 0:
            continue
        if elem.value in (None, "", b"") or (hasattr(elem.value, "__len__") and len(elem.value) == 0):
            continue
        keywords.append(elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})")
    return any(k not in NOT_PHI for k in keywords), sorted(keywords)


def run(ctx: CheckContext) -> list[Observation]:
    out = open_association(ctx, [PatientRootFind], random_ae("TCMNOSUCH"))
    if out.result != "accepted":
        for called in candidate_called_aes(ctx.asset):
            finish(out.assoc)
            out = open_association(ctx, [PatientRootFind], called)
            break
    data = {"query_model": "PatientRoot", "query_level": "PATIENT", "query": "PatientID=*",
            "association": out.result, "called_ae_random": out.called_ae.startswith("TCMNOSUCH"),
            "context_accepted": out.established, "status": None, "results_read": 0, "cancelled": False,
            "phi_exposed": False, "attribute_count": 0, "attribute_keywords": []}
    try:
        if not out.established or out.assoc is None:
            return [ctx.observation("cfind", data)]
        assoc = out.assoc
        responses = assoc.send_c_find(query(), PatientRootFind, msg_id=MESSAGE_ID)
        try:
            status, identifier = next(responses)
        except StopIteration:
            raise CheckError("protocol", "no C-FIND response") from None
        if status is None or "Status" not in status:
            sock = assoc.dul.socket
            failure = getattr(sock, "failure", None)
            if failure is not None:
                raise failure
            raise CheckError("timeout", "no C-FIND response within the time allowed (or the peer aborted)")
        code = int(status.Status)
        data["status_code"] = code
        data["status"] = ("pending" if code in (0xFF00, 0xFF01) else "success" if code == 0
                          else "cancelled" if code == 0xFE00 else "failure")
        if data["status"] == "pending":
            data["results_read"] = 1
            phi, keywords = summarise(identifier)
            del identifier                      # the values go no further than this line
            data.update(phi_exposed=phi, attribute_count=len(keywords), attribute_keywords=keywords)
            cx = assoc.accepted_contexts[0]
            assoc.send_c_cancel(MESSAGE_ID, cx.context_id)
            data["cancelled"] = True
        responses.close()       # remaining responses are never decoded
        return [ctx.observation("cfind", data)]
    finally:
        finish(out.assoc)
