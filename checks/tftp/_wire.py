"""TFTP (RFC 1350) packets, read side only: RRQ, ACK, ERROR out; DATA and ERROR in.

Our own, not tftpy: tftpy opens and owns its UDP socket (no way to send each datagram through the check
context's scope/pacing gate), writes what it reads to a file or stream with no size cap, retries on its own and
logs every packet through its own loggers. A read-only client is four packet shapes; the transfer loop that
bounds it (time, bytes, stray datagrams) is in configs.py.
"""

from __future__ import annotations

import struct

RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6
BLOCK = 512                 # RFC 1350 data size; a shorter block ends the transfer
MAX_DATAGRAM = 4 + BLOCK    # a DATA packet of the base protocol (we ask for no blksize option)
ERRORS = {0: "not defined", 1: "file not found", 2: "access violation", 3: "disk full", 4: "illegal operation",
          5: "unknown transfer ID", 6: "file already exists", 7: "no such user", 8: "option negotiation refused"}


class TftpError(Exception):
    """A datagram that is no TFTP packet we can read."""


def rrq(filename: str) -> bytes:
    name = filename.encode("ascii")
    if b"\0" in name or not name:
        raise ValueError("bad file name")
    return struct.pack("!H", RRQ) + name + b"\0octet\0"


def ack(block: int) -> bytes:
    return struct.pack("!HH", ACK, block & 0xFFFF)


def error(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode("ascii", "replace") + b"\0"


def parse(datagram: bytes) -> tuple[str, int, bytes | str]:
    """('data', block, payload) or ('error', code, message); TftpError for anything else."""
    if len(datagram) < 4:
        raise TftpError(f"datagram of {len(datagram)} bytes")
    opcode, number = struct.unpack("!HH", datagram[:4])
    body = datagram[4:]
    if opcode == DATA:
        if len(body) > BLOCK:
            raise TftpError(f"DATA block of {len(body)} bytes (more than {BLOCK})")
        return "data", number, body
    if opcode == ERROR:
        return "error", number, body.split(b"\0", 1)[0][:200].decode("utf-8", "replace")
    if opcode == OACK:
        raise TftpError("option acknowledgement to a request without options")
    raise TftpError(f"unexpected opcode {opcode}")
