"""SNMP v1/v2c messages with scapy's ASN.1/BER SNMP layer (a base dependency; no pysnmp needed).

`encode_get`/`encode_set` build one message; `decode` turns an untrusted datagram into plain data or
raises `SnmpError` (scapy raises many exception types on garbage: all are caught here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.asn1.asn1 import ASN1_NULL, ASN1_OID, ASN1_STRING  # noqa: E402
from scapy.layers.snmp import SNMP, SNMPget, SNMPresponse, SNMPset, SNMPvarbind  # noqa: E402

VERSIONS = {"v1": 0, "v2c": 1}
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
MAX_DATAGRAM = 65507
# RFC 3416 4.2.5 / RFC 1157 4.1.5 error-status values we interpret.
ERRORS = {0: "noError", 1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr",
          6: "noAccess", 7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue",
          11: "noCreation", 12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed",
          15: "undoFailed", 16: "authorizationError", 17: "notWritable", 18: "inconsistentName"}


class SnmpError(Exception):
    """Not an SNMP v1/v2c response we can read."""


@dataclass
class Response:
    version: str
    community: str
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[str, Any]] = field(default_factory=list)


def encode_get(version: str, community: str, request_id: int, oids: list[str]) -> bytes:
    pdu = SNMPget(id=request_id, varbindlist=[SNMPvarbind(oid=ASN1_OID(o), value=ASN1_NULL(0)) for o in oids])
    return bytes(SNMP(version=VERSIONS[version], community=community.encode(), PDU=pdu))


def encode_set_string(version: str, community: str, request_id: int, oid: str, value: bytes) -> bytes:
    pdu = SNMPset(id=request_id, varbindlist=[SNMPvarbind(oid=ASN1_OID(oid), value=ASN1_STRING(value))])
    return bytes(SNMP(version=VERSIONS[version], community=community.encode(), PDU=pdu))


def _plain(value: Any) -> Any:
    """An ASN.1 value as bytes (strings), str (OIDs), int, or None (NULL / exceptions / unknown)."""
    v = getattr(value, "val", value)
    if isinstance(value, ASN1_OID):
        return str(v).lstrip(".")
    if isinstance(v, (bytes, int)):
        return v
    if isinstance(v, str):
        return v
    return None


def decode(datagram: bytes) -> Response:
    if not datagram or len(datagram) > MAX_DATAGRAM or datagram[0] != 0x30:
        raise SnmpError("not a BER SEQUENCE")
    try:
        msg = SNMP(datagram)
        pdu = msg.PDU
        if not isinstance(pdu, SNMPresponse):
            raise SnmpError(f"not a response PDU ({type(pdu).__name__})")
        version = {0: "v1", 1: "v2c"}.get(int(msg.version.val))
        if version is None:
            raise SnmpError(f"SNMP version {msg.version.val} is not v1/v2c")
        community = msg.community.val
        binds = []
        for vb in pdu.varbindlist or []:
            oid = str(vb.oid.val).lstrip(".")
            value = vb.value
            if getattr(vb, "noSuchObject", None) is not None or getattr(vb, "noSuchInstance", None) is not None \
                    or getattr(vb, "endOfMibView", None) is not None:
                value = None
            binds.append((oid, _plain(value)))
        return Response(version=version,
                        community=community.decode("latin-1") if isinstance(community, bytes) else str(community),
                        request_id=int(pdu.id.val), error_status=int(pdu.error.val),
                        error_index=int(pdu.error_index.val), varbinds=binds)
    except SnmpError:
        raise
    except Exception as e:  # scapy raises many kinds on malformed BER; none may escape as a bug
        raise SnmpError(f"malformed SNMP message: {type(e).__name__}") from None


def text(value: Any, limit: int = 255) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return "" if value is None else "".join(c if c.isprintable() else " " for c in str(value))[:limit]


def classify_set(version: str, error_status: int) -> str:
    """Access a community has, from the agent's answer to a same-value SET.

    v2c (RFC 3416 4.2.5): access control is checked first, so noAccess/authorizationError mean the community
    may not write; any other answer (noError, notWritable, wrongValue, ...) means it passed access control.
    v1 (RFC 1157): readOnly means no write access; noSuchName is what both kinds get for a non-writable
    object on many agents (net-snmp), so it says nothing.
    """
    if error_status == 0:
        return "rw"
    if version == "v2c":
        return "ro" if error_status in (6, 16, 4) else "rw"
    return "ro" if error_status == 4 else "unknown"
