"""Hand-made SMB NEGOTIATE answers (MS-SMB2 2.2.4, MS-SMB 2.2.4.5.2) for the parsers' fuzz seeds and the
misbehaving servers of test_smb_badinput.py."""

from __future__ import annotations

import struct

FILETIME_2026 = 134_088_000_000_000_000      # 2025-11-28 10:40 UTC, 100 ns ticks since 1601


def smb2_answer(dialect: int = 0x0311, mode: int = 0x01, status: int = 0, system_time: int = FILETIME_2026) -> bytes:
    header = (b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, status, 0, 1, 0x1, 0, 0, 0, 0, 0) + b"\x00" * 16)
    if status:
        return header + struct.pack("<HBBI", 9, 0, 0, 0) + b"\x00"
    body = struct.pack("<HHHH", 65, mode, dialect, 0) + b"G" * 16 + struct.pack("<IIIIQQHHI", 0x7, 65536, 65536,
                                                                                  65536, system_time, 0, 128, 0, 0)
    return header + body


def smb1_answer(index: int = 0, mode: int = 0x07, system_time: int = FILETIME_2026) -> bytes:
    header = b"\xffSMB" + struct.pack("<BIBHH8sHHHHH", 0x72, 0, 0x98, 0xC853, 0, b"\x00" * 8, 0, 0, 0, 0, 0)
    if index == 0xFFFF:
        return header + struct.pack("<BHH", 1, 0xFFFF, 0)
    params = struct.pack("<HBHHIIIIIIHB", index, mode, 50, 1, 16644, 65536, 0, 0x8000F3FD,
                         system_time & 0xFFFFFFFF, system_time >> 32, 0, 0)
    return header + struct.pack("<B", 17) + params + struct.pack("<H", 16) + b"G" * 16


def framed(message: bytes) -> bytes:
    return struct.pack(">I", len(message)) + message
