"""lab pacs: DICOM Q/R SCP on 104 (pynetdicom), planted weaknesses.

dcmtk's dcmqrscp refuses associations whose called AE title is not in its AETable, and
the plant needs "any calling AND called AE title", so the archive is pynetdicom.  It
answers C-ECHO and patient/study-root C-FIND with synthetic patients, plaintext only.
It never stores or moves anything.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

# Made-up patients only (no real PHI anywhere in the lab).
PATIENTS = [
    ("TEST^PATIENT1", "LAB0001", "19500101", "F"),
    ("TEST^PATIENT2", "LAB0002", "19620517", "M"),
    ("TEST^PATIENT3", "LAB0003", "19781130", "F"),
]


def _match(pattern: object, value: str) -> bool:
    text = str(pattern or "")
    return not text or fnmatch.fnmatchcase(value, text)


def handle_find(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    req = event.identifier
    level = str(getattr(req, "QueryRetrieveLevel", "PATIENT"))
    if level != "PATIENT":
        yield 0x0000, None  # only patient level is served; no matches elsewhere
        return
    for name, pid, birth, sex in PATIENTS:
        if not (_match(req.get("PatientName", ""), name) and _match(req.get("PatientID", ""), pid)):
            continue
        ds = Dataset()
        ds.QueryRetrieveLevel = "PATIENT"
        ds.PatientName = name
        ds.PatientID = pid
        ds.PatientBirthDate = birth
        ds.PatientSex = sex
        yield 0xFF00, ds


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    ae = AE(ae_title="PACS")
    # Planted: no AE-title checks at all (these are pynetdicom's permissive defaults,
    # set explicitly so the plant is visible here).
    ae.require_called_aet = False
    ae.require_calling_aet = []
    for ctx in (Verification, PatientRootQueryRetrieveInformationModelFind,
                StudyRootQueryRetrieveInformationModelFind):
        ae.add_supported_context(ctx)
    ae.start_server(("0.0.0.0", 104), block=True, evt_handlers=[(evt.EVT_C_FIND, handle_find)])


if __name__ == "__main__":
    main()
