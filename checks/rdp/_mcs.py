"""Standard RDP security's encryption: the client's MCS Connect Initial (MS-RDPBCGR 2.2.1.3, T.125 BER around a
T.124 GCC Conference Create Request) offering one encryption method, and the server's MCS Connect Response
(2.2.1.4), from which only the Server Security Data block (TS_UD_SC_SEC1, 2.2.1.4.3) is read: the method the
server chose and its encryption level. Sent only after a Connection Confirm that selected standard RDP security;
nothing follows it (no Erect Domain, no licensing, no login).

The request mirrors the MS-RDPBCGR 4.1.3 example (and nmap's rdp.lua): fixed bytes with the method put in.
"""

from __future__ import annotations

import struct

from scanner.sdk.x224 import X224Error

# encryptionMethods flags (2.2.1.3.3) and encryptionLevel values (2.2.1.4.3)
METHODS = {0x01: "40-bit RC4", 0x08: "56-bit RC4", 0x02: "128-bit RC4", 0x10: "FIPS 140-1"}
LEVELS = {0: "None", 1: "Low", 2: "Client Compatible", 3: "High", 4: "FIPS Compliant"}
SC_SECURITY = 0x0C02
SERVER_BLOCKS = {0x0C01, 0x0C02, 0x0C03, 0x0C04, 0x0C08}
MAX_RESPONSE = 16384


def _ber_len(n: int) -> bytes:
    return b"\x82" + struct.pack(">H", n)


def _domain(*values: int) -> bytes:
    body = b"".join(b"\x02" + (bytes([1, v]) if v < 0x80 else b"\x02" + struct.pack(">H", v)) for v in values)
    return b"\x30" + bytes([len(body)]) + body


def _client_core() -> bytes:
    """TS_UD_CS_CORE (2.2.1.3.2): RDP 5 client, 1024x768, 8 bpp colour depth, US keyboard, name TCMSCAN."""
    name = "TCMSCAN".encode("utf-16-le").ljust(32, b"\x00")
    body = struct.pack("<IHHHHII", 0x00080004, 1024, 768, 0xCA01, 0xAA03, 0x409, 2600) + name
    body += struct.pack("<III", 4, 0, 12) + b"\x00" * 64                      # keyboard type/subtype/F-keys, IME
    body += struct.pack("<HHIHHH", 0xCA01, 1, 0, 24, 0x0007, 0x0001) + b"\x00" * 64   # ... clientDigProductId
    body += struct.pack("<BBI", 0, 0, 0)                                       # connectionType, pad, protocol RDP
    return struct.pack("<HH", 0xC001, 4 + len(body)) + body


def connect_initial(method: int) -> bytes:
    """TPKT + X.224 Data + MCS Connect Initial offering only `method` (a METHODS key)."""
    blocks = (_client_core() + struct.pack("<HHII", 0xC002, 12, method, 0)      # CS_SECURITY
              + struct.pack("<HHI", 0xC003, 8, 0))                               # CS_NET, no channels
    ccr = bytes.fromhex("0008001000 01c000 44756361") + struct.pack(">H", 0x8000 | len(blocks)) + blocks
    gcc = bytes.fromhex("0005 00147c0001") + struct.pack(">H", 0x8000 | len(ccr)) + ccr
    body = (b"\x04\x01\x01" + b"\x04\x01\x01" + b"\x01\x01\xff"
            + _domain(34, 2, 0, 1, 0, 1, 0xFFFF, 2) + _domain(1, 1, 1, 1, 0, 1, 0x420, 2)
            + _domain(0xFFFF, 0xFC17, 0xFFFF, 1, 0, 1, 0xFFFF, 2) + b"\x04" + _ber_len(len(gcc)) + gcc)
    mcs = b"\x7f\x65" + _ber_len(len(body)) + body
    x224 = b"\x02\xf0\x80" + mcs
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def _ber(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the BER element at pos; two-byte tags for 0x7f xx."""
    if pos + 2 > len(data):
        raise X224Error("BER element cut short")
    tag = data[pos]
    pos += 1
    if tag == 0x7F:
        tag = 0x7F00 | data[pos]
        pos += 1
    if pos >= len(data):
        raise X224Error("BER length missing")
    first = data[pos]
    pos += 1
    if first & 0x80:
        n = first & 0x7F
        if not 1 <= n <= 2 or pos + n > len(data):
            raise X224Error(f"BER length of {n} bytes")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    else:
        length = first
    if pos + length > len(data):
        raise X224Error(f"BER value of {length} bytes past the end ({len(data) - pos} left)")
    return tag, pos, pos + length


def parse_connect_response(packet: bytes) -> tuple[int, int]:
    """A whole TPKT packet holding an MCS Connect Response -> (encryptionMethod, encryptionLevel)."""
    if len(packet) < 8 or packet[0] != 3 or packet[4:7] != b"\x02\xf0\x80":
        raise X224Error(f"not an X.224 Data TPDU: {packet[:8].hex()}")
    tag, start, end = _ber(packet, 7)
    if tag != 0x7F66:
        raise X224Error(f"BER tag {tag:#x} is not an MCS Connect Response")
    pos, user_data = start, None
    while pos < end:
        tag, vstart, vend = _ber(packet, pos)
        if tag == 0x0A and packet[vstart:vend] not in (b"\x00",):
            raise X224Error(f"MCS Connect Response result {packet[vstart:vend].hex()} (not rt-successful)")
        if tag == 0x04:
            user_data = packet[vstart:vend]
        pos = vend
    if user_data is None:
        raise X224Error("MCS Connect Response without user data")
    blocks = _server_blocks(user_data)
    sec = blocks.get(SC_SECURITY)
    if sec is None or len(sec) < 8:
        raise X224Error("no Server Security Data block")
    method, level = struct.unpack("<II", sec[:8])
    return method, level


def _server_blocks(ud: bytes) -> dict[int, bytes]:
    """The server data blocks at the end of the GCC Conference Create Response: the first offset from which
    TS_UD_HEADER blocks chain exactly to the end (the PER header before them is of variable length)."""
    for start in range(min(len(ud), 64)):
        blocks: dict[int, bytes] = {}
        pos = start
        while pos + 4 <= len(ud):
            kind, length = struct.unpack("<HH", ud[pos:pos + 4])
            if kind not in SERVER_BLOCKS or length < 4 or pos + length > len(ud):
                break
            blocks[kind] = ud[pos + 4:pos + length]
            pos += length
        if blocks and pos == len(ud):
            return blocks
    raise X224Error("no server data blocks in the GCC Conference Create Response")
