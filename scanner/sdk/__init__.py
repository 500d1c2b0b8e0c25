"""What a check is written against, and nothing else. Every module under checks/ imports only from here.

    from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

Shared protocol helpers live in sub-modules: `scanner.sdk.ssh_session` (one SSH login per host),
`scanner.sdk.probes` (DICOM PDUs, MLLP), `scanner.sdk.http_wire`, `scanner.sdk.ftp`, `scanner.sdk.versions`,
`scanner.sdk.x224` (RDP connection negotiation), `scanner.sdk.rfb` (VNC opening and authentication).
"""

from scanner.core.knowledge import KNOWLEDGE_DIR, knowledge
from scanner.core.models import Asset, Observation, Service
from scanner.sdk.context import CheckContext
from scanner.sdk.errors import CheckError, CheckNotApplicable
from scanner.sdk.meta import CheckMeta

__all__ = ["KNOWLEDGE_DIR", "Asset", "CheckContext", "CheckError", "CheckMeta", "CheckNotApplicable", "Observation",
           "Service", "knowledge"]
