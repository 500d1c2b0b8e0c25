"""DICOM PDUs and the association exchange, HL7 v2 over MLLP (scanner/sdk/probes.py: ProbeError only), and SNMP
responses (checks/snmp/_wire.py: SnmpError only)."""

from __future__ import annotations

import struct
import time

from hypothesis import given
from hypothesis import strategies as st

from checks.snmp import _wire as snmp
from scanner.sdk import probes
from tests.fuzz import bounded, fuzz, mutated, peer


def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def _associate_ac() -> bytes:
    """An A-ASSOCIATE-AC accepting Verification, as a PACS answers our A-ASSOCIATE-RQ."""
    pc = struct.pack(">BBBB", 1, 0, 0, 0) + _item(0x40, probes.IMPLICIT_LE.encode())
    user = (_item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.826.0.1.3680043.9.3811.2.0.2")
            + _item(0x55, b"PYNETDICOM_202"))
    body = (struct.pack(">HH", 1, 0) + b"ANY-SCP".ljust(16) + b"TCMSCAN".ljust(16) + bytes(32)
            + _item(0x10, probes.APPLICATION_CONTEXT.encode()) + _item(0x21, pc) + _item(0x50, user))
    return struct.pack(">BBI", 2, 0, len(body)) + body


AC = _associate_ac()
RJ = struct.pack(">BBIBBBB", 3, 0, 4, 0, 1, 1, 7)
ACK = (b"MSH|^~\\&|HIS|HOSP|TCMSCAN|SECURITY-ASSESSMENT|20240101120000||ACK^A01|42|P|2.5\r"
       b"MSA|AA|TCMSCAN1-NONE\r")
SNMP_RESPONSE = bytes.fromhex("302902010104067075626c6963a21c02010702010002010030113"
                              "00f06082b060102010101000403666f6f")


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(st.sampled_from((AC, RJ)))))
def test_dicom_pdu(data: bytes) -> None:
    pdu = bounded(probes.parse_pdu, data, allowed=(probes.ProbeError,))
    assert pdu is None or pdu.name in probes.PDU_TYPES.values()


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(st.sampled_from((AC, AC + RJ, RJ)))))
def test_dicom_association_with_any_peer(sent: bytes) -> None:
    with peer(sent) as sock:
        bounded(probes.dicom_associate, sock, time.monotonic() + 2.0, "ANY-SCP", "TCMSCAN",
                allowed=(probes.ProbeError,))


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(st.just(ACK))))
def test_hl7_message(data: bytes) -> None:
    a = bounded(probes.parse_hl7, data, allowed=(probes.ProbeError,))
    assert a is None or len(a.msa_code) <= 2


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(st.just(probes.mllp_frame(ACK)))))
def test_mllp_exchange_with_any_peer(sent: bytes) -> None:
    def exchange(sock) -> object:
        return probes.parse_hl7(probes.read_mllp_frame(sock, time.monotonic() + 2.0))

    with peer(sent) as sock:
        bounded(exchange, sock, allowed=(probes.ProbeError,))


@fuzz
@given(st.one_of(st.binary(max_size=1500), mutated(st.just(SNMP_RESPONSE))))
def test_snmp_response(datagram: bytes) -> None:
    r = bounded(snmp.decode, datagram, allowed=(snmp.SnmpError,))
    if r is not None:
        assert all(isinstance(bounded(snmp.text, v), str) for _, v in r.varbinds)
