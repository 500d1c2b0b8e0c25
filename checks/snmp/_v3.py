"""SNMPv3 messages (RFC 3412 message, RFC 3414 USM security parameters) with pysnmp's ASN.1 definitions and
pyasn1's BER codec: only the message types, not pysnmp's engine or transport (which open their own sockets,
retry on their own timers and hide the Report that names why a request was refused).

`discovery` asks, with no user and no engine ID, for the agent's authoritative engine (RFC 3414 4: the answer
is a Report with usmStatsUnknownEngineIDs); `get` asks for sysDescr.0 as one user at noAuthNoPriv;
`get_authenticated` asks for it with a configured user's keys (authNoPriv or authPriv), using pysnmp's USM
algorithm classes only for the arithmetic (key localisation RFC 3414 A.2, HMAC-MD5-96 / HMAC-SHA-96 RFC 3414 6-7,
HMAC-SHA-2 RFC 7860, CBC-DES RFC 3414 8, CFB128-AES-128 RFC 3826). `decode` turns an untrusted datagram into
plain data or raises `SnmpV3Error` (pyasn1 raises many types on garbage); given the user's keys it checks the
answer's digest and decrypts its scoped PDU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import HeaderData, ScopedPDU, ScopedPduData, SNMPv3Message
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

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


# Names as net-snmp's snmpget -a / -x spell them (and as the credentials file takes them)
AUTH_PROTOCOLS: dict[str, Any] = {
    "MD5": hmacmd5.HmacMd5(), "SHA": hmacsha.HmacSha(),
    "SHA-224": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA224_SERVICE_ID),
    "SHA-256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
    "SHA-384": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SAH384_SERVICE_ID),
    "SHA-512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID)}
class _AesCfb128(aes.Aes):
    """RFC 3826 CFB128-AES-128 with `cryptography`'s primitives: pysnmp 7.1's own encrypt/decrypt import CFB from
    `cryptography.hazmat.decrepit`, which cryptography 46 does not have yet ("Ciphering services not
    available"); its key localisation (RFC 3826 1.2, as RFC 3414 A.2) is used as is."""

    def __init__(self) -> None:
        self._salt = int.from_bytes(os.urandom(8), "big")

    @staticmethod
    def _cipher(key: Any, boots: int, time_: int, salt: bytes) -> Cipher:
        iv = boots.to_bytes(4, "big") + time_.to_bytes(4, "big") + salt          # RFC 3826 3.1.2.1
        return Cipher(algorithms.AES(bytes(key)[:16]), modes.CFB(iv))

    def encrypt_data(self, encryptKey, privParameters, dataToEncrypt):  # noqa: ANN001, ANN201, N802, N803
        boots, time_, _ = privParameters
        self._salt = (self._salt + 1) % (1 << 64)
        salt = self._salt.to_bytes(8, "big")
        enc = self._cipher(encryptKey, int(boots), int(time_), salt).encryptor()
        return enc.update(bytes(dataToEncrypt)) + enc.finalize(), salt

    def decrypt_data(self, decryptKey, privParameters, encryptedData):  # noqa: ANN001, ANN201, N802, N803
        boots, time_, salt = privParameters
        if len(salt) != 8:
            raise SnmpV3Error("AES privacy parameters are not 8 bytes")
        dec = self._cipher(decryptKey, int(boots), int(time_), bytes(salt)).decryptor()
        return dec.update(bytes(encryptedData)) + dec.finalize()


PRIV_PROTOCOLS: dict[str, Any] = {"DES": des.Des(), "AES": _AesCfb128()}


@dataclass(repr=False)
class UserKeys:
    """A configured user's keys localised to one engine (RFC 3414 2.6). Secrets: never printed or stored."""
    user: str
    auth: str
    priv: str                       # "" for authNoPriv
    auth_key: Any
    priv_key: Any

    def __repr__(self) -> str:
        return f"UserKeys(user={self.user!r}, auth={self.auth!r}, priv={self.priv!r}, keys=***)"


def localize(user: str, auth: str, auth_pass: str, priv: str, priv_pass: str, engine_id: bytes) -> UserKeys:
    a = AUTH_PROTOCOLS[auth]
    eid = univ.OctetString(engine_id)
    auth_key = a.localize_key(a.hash_passphrase(auth_pass.encode()), eid)
    priv_key = None
    if priv:
        p = PRIV_PROTOCOLS[priv]
        priv_key = p.localize_key(a.SERVICE_ID, p.hash_passphrase(a.SERVICE_ID, priv_pass.encode()), eid)
    return UserKeys(user, auth, priv, auth_key, priv_key)


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


def _scoped_get(request_id: int, engine_id: bytes) -> ScopedPDU:
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, [(SYS_DESCR, v2c.null)])
    scoped = ScopedPDU()
    scoped["contextEngineId"] = engine_id
    scoped["contextName"] = b""
    scoped["data"].setComponentByType(pdu.tagSet, pdu)
    return scoped


def _message(msg_id: int, request_id: int, user: bytes, engine_id: bytes, boots: int, time: int,
             keys: UserKeys | None = None) -> bytes:
    scoped = _scoped_get(request_id, engine_id)
    usm = UsmSecurityParameters()
    usm["msgAuthoritativeEngineId"] = engine_id
    usm["msgAuthoritativeEngineBoots"] = boots
    usm["msgAuthoritativeEngineTime"] = time
    usm["msgUserName"] = user
    data = ScopedPduData()
    flags = 0x04                              # reportable, noAuthNoPriv
    auth = AUTH_PROTOCOLS[keys.auth] if keys else None
    usm["msgAuthenticationParameters"] = bytes(auth.digest_length) if auth else b""   # the digest's placeholder
    usm["msgPrivacyParameters"] = b""
    if keys and keys.priv:
        cipher, salt = PRIV_PROTOCOLS[keys.priv].encrypt_data(keys.priv_key, (boots, time, None),
                                                              encoder.encode(scoped))
        usm["msgPrivacyParameters"] = bytes(salt)
        data["encryptedPDU"] = bytes(cipher)
        flags = 0x07                          # reportable, auth, priv
    else:
        data["plaintext"] = scoped
        flags |= 0x01 if keys else 0
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    header = HeaderData()
    header["msgID"] = msg_id
    header["msgMaxSize"] = MAX_SIZE
    header["msgFlags"] = bytes([flags])
    header["msgSecurityModel"] = USM
    msg["msgGlobalData"] = header
    msg["msgSecurityParameters"] = encoder.encode(usm)
    msg["msgData"] = data
    whole = encoder.encode(msg)
    if auth is None:
        return whole
    # RFC 3414 6.3.1: the digest over the whole message with the placeholder zeroed, written in its place.
    # pysnmp finds the placeholder by searching for the first run of zeros: put it first by construction.
    if whole.count(bytes(auth.digest_length)) != 1:
        raise SnmpV3Error("digest placeholder is not unique in the message (an engine ID full of zeros?)")
    return bytes(auth.authenticate_outgoing_message(keys.auth_key, whole))


def discovery(msg_id: int, request_id: int) -> bytes:
    return _message(msg_id, request_id, b"", b"", 0, 0)


def get(msg_id: int, request_id: int, user: str, engine_id: bytes, boots: int, time: int) -> bytes:
    return _message(msg_id, request_id, user.encode(), engine_id, boots, time)


def get_authenticated(msg_id: int, request_id: int, keys: UserKeys, engine_id: bytes, boots: int,
                      time: int) -> bytes:
    return _message(msg_id, request_id, keys.user.encode(), engine_id, boots, time, keys)


def decode(data: bytes, keys: UserKeys | None = None) -> V3Answer:
    """An agent's answer. With `keys`, an authenticated answer's digest must match (else SnmpV3Error) and an
    encrypted scoped PDU is decrypted; without, an encrypted one is an SnmpV3Error."""
    try:
        msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        if int(msg["msgVersion"]) != 3:
            raise SnmpV3Error(f"SNMP version {int(msg['msgVersion'])}, not 3")
        usm, _ = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
        flags = bytes(msg["msgGlobalData"]["msgFlags"])[:1]
        authenticated = bool(flags and flags[0] & 0x01)
        if authenticated:
            if keys is None:
                raise SnmpV3Error("an authenticated message and no keys")
            digest = bytes(usm["msgAuthenticationParameters"])
            a = AUTH_PROTOCOLS[keys.auth]
            if len(digest) != a.digest_length or data.count(digest) != 1:
                raise SnmpV3Error("authenticated answer with a malformed digest")
            try:
                a.authenticate_incoming_message(keys.auth_key, usm["msgAuthenticationParameters"], data)
            except Exception:
                raise SnmpV3Error("answer's digest does not match the user's key") from None
        data_ = msg["msgData"]
        if data_.getName() != "plaintext":
            if keys is None or not keys.priv or not authenticated:
                raise SnmpV3Error("an encrypted scoped PDU")
            plain = PRIV_PROTOCOLS[keys.priv].decrypt_data(
                keys.priv_key, (int(usm["msgAuthoritativeEngineBoots"]), int(usm["msgAuthoritativeEngineTime"]),
                                usm["msgPrivacyParameters"]), data_["encryptedPDU"])
            scoped, _ = decoder.decode(bytes(plain), asn1Spec=ScopedPDU())
        else:
            scoped = data_["plaintext"]
        pdu = scoped["data"].getComponent()
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
