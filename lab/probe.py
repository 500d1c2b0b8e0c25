"""Readiness probes: does a planted service answer?  Lab addresses only."""

from __future__ import annotations

import os
import socket

from lab.topology import Service


def tcp_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ber_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xFF])


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(value)) + value


def snmp_get_sysdescr(community: str, request_id: int) -> bytes:
    """A minimal SNMPv2c GetRequest for sysDescr.0 (hand-encoded BER; no SNMP library)."""
    oid = _tlv(0x06, bytes([0x2B, 6, 1, 2, 1, 1, 1, 0]))
    varbind = _tlv(0x30, _tlv(0x30, oid + b"\x05\x00"))
    pdu = _tlv(0xA0, _tlv(0x02, request_id.to_bytes(4, "big")) + b"\x02\x01\x00\x02\x01\x00" + varbind)
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, community.encode()) + pdu)


def snmp_answers(address: str, community: str = "public", timeout: float = 1.0) -> bool:
    req_id = int.from_bytes(os.urandom(3), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(snmp_get_sysdescr(community, req_id), (address, 161))
            data, _ = s.recvfrom(4096)
        except OSError:
            return False
    return data[:1] == b"\x30" and req_id.to_bytes(4, "big") in data


def _udp_answer(address: str, port: int, request: bytes, timeout: float) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(request, (address, port))
            return s.recvfrom(4096)[0]
        except OSError:
            return b""


def tftp_answers(address: str, timeout: float = 1.0) -> bool:
    """A read request for a name no server holds: TFTP answers ERROR (opcode 5), any TFTP server at all."""
    name = f"lab-ready-{os.urandom(4).hex()}".encode()
    return _udp_answer(address, 69, b"\x00\x01" + name + b"\x00octet\x00", timeout)[:2] == b"\x00\x05"


def rmcp_answers(address: str, timeout: float = 1.0) -> bool:
    """An ASF presence ping (RMCP class 6, DMTF IANA 4542): a BMC answers with a presence pong (type 0x40)."""
    ping = b"\x06\x00\xff\x06" + b"\x00\x00\x11\xbe" + b"\x80\x00\x00\x00"
    data = _udp_answer(address, 623, ping, timeout)
    return len(data) >= 9 and data[:1] == b"\x06" and data[8] == 0x40


def service_ready(address: str, svc: Service) -> bool:
    if svc.probe == "snmp":
        return snmp_answers(address)
    if svc.probe == "tftp":
        return tftp_answers(address)
    if svc.probe == "rmcp":
        return rmcp_answers(address)
    return tcp_open(address, svc.port)
