"""lab modality: a pynetdicom storage SCP presenting an OLD DCMTK identity (planted).

Real old DCMTK is not in Debian, so pynetdicom announces DCMTK 3.6.2's implementation
class UID and version name in its A-ASSOCIATE-AC.  Accepts any AE title, plaintext.
Received objects are acknowledged and discarded (the lab never keeps images).
"""

from __future__ import annotations

import logging

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

OLD_DCMTK_UID = "1.2.276.0.7230010.3.0.3.6.2"
OLD_DCMTK_NAME = "OFFIS_DCMTK_362"


def handle_store(event: evt.Event) -> int:
    return 0x0000


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    ae = AE(ae_title="MODALITY")
    ae.implementation_class_uid = OLD_DCMTK_UID
    ae.implementation_version_name = OLD_DCMTK_NAME
    ae.require_called_aet = False
    ae.require_calling_aet = []
    ae.add_supported_context(Verification)
    for ctx in AllStoragePresentationContexts:
        ae.add_supported_context(ctx.abstract_syntax)
    ae.start_server(("0.0.0.0", 11112), block=True, evt_handlers=[(evt.EVT_C_STORE, handle_store)])


if __name__ == "__main__":
    main()
