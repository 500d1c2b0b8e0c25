"""SNMPv3 messages (RFC 3412 message, RFC 3414 USM security parameters) with pysnmp's ASN.1 definitions and
pyasn1's BER codec: only the message types, not pysnmp's engine or transport (which open their own sockets,
retry on their own timers and hide the Report that names why a request was refused).

`discovery` asks, with no user and no engine ID, for the agent's authoritative engine (RFC 3414 4: the answer
is a Report with usmStatsUnknownEngineIDs); `get` asks for sysDescr.0 as one user at noAuthNoPriv. `decode`
turns an untrusted datagram into plain data or raises `SnmpV3Error` (pyasn1 raises many types on garbage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import HeaderData, ScopedPDU, ScopedPduData, SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
USM = 3
MAX_SIZE = 65507
# RFC 3414 usmStats counters a Report names (the reason a request was refused)
REPORTS = {"1.3.6.1.6.3.15.1.1.1.0": "unsupportedSecLevel", "1.3.6.1.6.3.15.1.1.2.0": "notInTimeWindow",
           "1.3.6.1.6.3.15.1.1.3.0": "unknownUserName", "1.3.6.1.6.3.15.1.1.4.0": "unknownEngineID",
           "1.3.6.1.6.3.15.1.1.5.0": "wrongDigest", "1.3.6.1.6.3.15.1.1.6.0": "decryptionError",
           "1.3.6.1.6.3.11.2.1.1.0": "unknownSecurityModel"}


class SnmpV3Error(Exception):
    pass


@dataclass
class V3Answer:
    msg_id: int
    engine_id: bytes
    boots: int
    time: int
    user: str
    pdu: str                       # "report", "response" or another PDU name
    request_id: int
    report: str = ""               # for a report: the usmStats counter's name
    error_status: int = 0
    values: list[str] = field(default_factory=list)


def _message(msg_id: int, request_id: int, user: bytes, engine_id: bytes, boots: int, time: int) -> bytes:
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, [(SYS_DESCR, v2c.null)])
    scoped = ScopedPDU()
    scoped["contextEngineId"] = engine_id
    scoped["contextName"] = b""
    scoped["data"].setComponentByType(pdu.tagSet, pdu)
    usm = UsmSecurityParameters()
    usm["msgAuthoritativeEngineId"] = engine_id
    usm["msgAuthoritativeEngineBoots"] = boots
    usm["msgAuthoritativeEngineTime"] = time
    usm["msgUserName"] = user
    usm["msgAuthenticationParameters"] = b""
    usm["msgPrivacyParameters"] = b""
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    header = HeaderData()
    header["msgID"] = msg_id
    header["msgMaxSize"] = MAX_SIZE
    header["msgFlags"] = b"\x04"             # reportable, noAuthNoPriv
    header["msgSecurityModel"] = USM
    msg["msgGlobalData"] = header
    msg["msgSecurityParameters"] = encoder.encode(usm)
    data = ScopedPduData()
    data["plaintext"] = scoped
    msg["msgData"] = data
    return encoder.encode(msg)


def discovery(msg_id: int, request_id: int) -> bytes:
    return _message(msg_id, request_id, b"", b"", 0, 0)


def get(msg_id: int, request_id: int, user: str, engine_id: bytes, boots: int, time: int) -> bytes:
    return _message(msg_id, request_id, user.encode(), engine_id, boots, time)


def decode(data: bytes) -> V3Answer:
    try:
        msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        if int(msg["msgVersion"]) != 3:
            raise SnmpV3Error(f"SNMP version {int(msg['msgVersion'])}, not 3")
        usm, _ = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
        data_ = msg["msgData"]
        if data_.getName() != "plaintext":
            raise SnmpV3Error("an encrypted scoped PDU")
        pdu = data_["plaintext"]["data"].getComponent()
        name = {"ReportPDU": "report", "ResponsePDU": "response"}.get(type(pdu).__name__, type(pdu).__name__)
        binds = [(str(oid), val) for oid, val in v2c.apiPDU.get_varbinds(pdu)][:16]
        answer = V3Answer(
            msg_id=int(msg["msgGlobalData"]["msgID"]), engine_id=bytes(usm["msgAuthoritativeEngineId"])[:64],
            boots=int(usm["msgAuthoritativeEngineBoots"]), time=int(usm["msgAuthoritativeEngineTime"]),
            user=bytes(usm["msgUserName"])[:64].decode("utf-8", "replace"), pdu=name,
            request_id=int(v2c.apiPDU.get_request_id(pdu)), error_status=int(v2c.apiPDU.get_error_status(pdu)))
        if name == "report":
            answer.report = next((REPORTS.get(oid, oid) for oid, _ in binds), "")[:60]
        else:
            answer.values = [val.prettyPrint()[:200] for _, val in binds]
        return answer
    except SnmpV3Error:
        raise
    except Exception as e:   # pyasn1/pysnmp raise many types on a malformed message; all mean "unreadable"
        raise SnmpV3Error(f"unreadable SNMPv3 message: {type(e).__name__}: {str(e)[:120]}") from None
