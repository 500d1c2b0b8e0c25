"""Our own small, bounded DICOM and HL7/MLLP probes.

Used by discovery to identify DICOM and MLLP listeners fast (nmap -sV needs minutes there:
docs/lab.md#nmap-service-detection-on-dicom-and-hl7) and by the hl7.mllp check for framing. Everything read from the network is untrusted: every read has a byte
limit and a deadline, and every parser raises `ProbeError` (never anything else) on garbage.

DICOM PS3.8 9.3 (PDU structure); MLLP: HL7 v2 "Minimal Lower Layer Protocol" (0x0b message 0x1c 0x0d).
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass, field

# Our own implementation identity in A-ASSOCIATE-RQ (a UUID-derived UID under 2.25, PS3.5 B.2).
TCMSCAN_IMPLEMENTATION_UID = "2.25.95574852778462759793119945242390308526"
TCMSCAN_IMPLEMENTATION_VERSION = "TCMSCAN_01"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
PDU_TYPES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
             5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}
MAX_ASSOC_PDU = 64 * 1024          # an A-ASSOCIATE-AC is a few hundred bytes; anything near this is garbage
# PS3.8 table 9-21: A-ASSOCIATE-RJ result/source/reason
RJ_REASONS = {
    (1, 1): "no reason given", (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized", (1, 7): "called AE title not recognized",
    (2, 1): "no reason given", (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion", (3, 2): "local limit exceeded",
}

MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"
MAX_MLLP_FRAME = 64 * 1024         # an ACK is well under 1 KiB
MAX_SEGMENTS = 64


class ProbeError(Exception):
    """The peer's bytes are not what the protocol allows (or arrive too slowly, or too many)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason        # protocol | timeout | connectivity
        self.detail = detail


def random_ae(prefix: str) -> str:
    """An AE title no real system uses (16 characters at most, PS3.5 VR AE)."""
    return (prefix + secrets.token_hex(8).upper())[:16]


# ------------------------------------------------------------------------------------------------ DICOM

def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def _ae16(title: str) -> bytes:
    return title.encode("ascii")[:16].ljust(16, b" ")


def associate_rq(called: str, calling: str, max_pdu: int = 16384) -> bytes:
    """A-ASSOCIATE-RQ proposing only Verification (C-ECHO): the one service that touches no data."""
    pc = struct.pack(">BBBB", 1, 0, 0, 0) + _item(0x30, VERIFICATION.encode()) + _item(0x40, IMPLICIT_LE.encode())
    user = (_item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, TCMSCAN_IMPLEMENTATION_UID.encode())
            + _item(0x55, TCMSCAN_IMPLEMENTATION_VERSION.encode()))
    body = (struct.pack(">HH", 1, 0) + _ae16(called) + _ae16(calling) + bytes(32)
            + _item(0x10, APPLICATION_CONTEXT.encode()) + _item(0x20, pc) + _item(0x50, user))
    return struct.pack(">BBI", 1, 0, len(body)) + body


RELEASE_RQ = struct.pack(">BBIL", 5, 0, 4, 0)
ABORT = struct.pack(">BBIBBBB", 7, 0, 4, 0, 0, 0, 0)


@dataclass
class DicomPdu:
    type: int
    name: str
    called_ae: str = ""
    calling_ae: str = ""
    implementation_class_uid: str = ""
    implementation_version_name: str = ""
    max_pdu: int | None = None
    contexts: list[tuple[int, int]] = field(default_factory=list)   # (context id, result)
    result: int | None = None        # RJ result / ABORT -
    source: int | None = None
    reason: int | None = None

    @property
    def reject_meaning(self) -> str:
        return RJ_REASONS.get((self.source or 0, self.reason or 0), "unknown")


def _uid(raw: bytes) -> str:
    return raw.rstrip(b"\x00 ").decode("ascii", errors="replace")[:64]


def parse_pdu(data: bytes) -> DicomPdu:
    """Parse one complete PDU (header included). Only the fields discovery and checks need."""
    if len(data) < 6:
        raise ProbeError("protocol", "short PDU header")
    kind, _, length = struct.unpack(">BBI", data[:6])
    if kind not in PDU_TYPES:
        raise ProbeError("protocol", f"not a DICOM PDU (type 0x{kind:02x})")
    if length != len(data) - 6:
        raise ProbeError("protocol", f"PDU length {length} but {len(data) - 6} bytes")
    pdu = DicomPdu(kind, PDU_TYPES[kind])
    body = data[6:]
    if kind in (3, 7):
        if len(body) != 4:
            raise ProbeError("protocol", f"{pdu.name} body of {len(body)} bytes")
        pdu.result, pdu.source, pdu.reason = body[1], body[2], body[3]
        return pdu
    if kind not in (1, 2):
        return pdu
    if len(body) < 68:
        raise ProbeError("protocol", f"{pdu.name} shorter than its fixed fields")
    pdu.called_ae = body[4:20].decode("ascii", errors="replace").strip()
    pdu.calling_ae = body[20:36].decode("ascii", errors="replace").strip()
    if not _walk_items(body[68:], pdu, top=True):
        raise ProbeError("protocol", f"{pdu.name} without an application context item")
    return pdu


def _walk_items(buf: bytes, pdu: DicomPdu, top: bool) -> bool:
    """Fill `pdu` from its items; True when an application context item (0x10) was among them."""
    i = 0
    app_context = False
    while i < len(buf):
        if i + 4 > len(buf):
            raise ProbeError("protocol", "truncated item header")
        kind, _, n = struct.unpack(">BBH", buf[i:i + 4])
        value = buf[i + 4:i + 4 + n]
        if len(value) != n:
            raise ProbeError("protocol", f"item 0x{kind:02x} runs past the PDU")
        i += 4 + n
        if top and kind == 0x10:
            app_context = True
        elif top and kind == 0x50:
            _walk_items(value, pdu, top=False)
        elif top and kind in (0x20, 0x21):
            if n < 4:
                raise ProbeError("protocol", "short presentation context item")
            pdu.contexts.append((value[0], value[2]))
        elif not top and kind == 0x51:
            if n != 4:
                raise ProbeError("protocol", "maximum length sub-item is not 4 bytes")
            pdu.max_pdu = struct.unpack(">I", value)[0]
        elif not top and kind == 0x52:
            pdu.implementation_class_uid = _uid(value)
        elif not top and kind == 0x55:
            pdu.implementation_version_name = _uid(value)[:16]
    return app_context


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProbeError("timeout", f"peer sent {len(out)} of {n} bytes before the deadline")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(65536, n - len(out)))
        except TimeoutError:
            raise ProbeError("timeout", f"peer sent {len(out)} of {n} bytes before the deadline") from None
        except OSError as e:
            raise ProbeError("connectivity", f"connection failed while reading: {e.strerror or e}") from None
        if not chunk:
            raise ProbeError("protocol", f"connection closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def read_pdu(sock: socket.socket, deadline: float, max_len: int = MAX_ASSOC_PDU) -> bytes:
    """One PDU, refusing (before reading it) any announced length above `max_len`."""
    head = _recv_exact(sock, 6, deadline)
    kind, _, length = struct.unpack(">BBI", head)
    if kind not in PDU_TYPES:
        raise ProbeError("protocol", f"not a DICOM PDU (first byte 0x{kind:02x})")
    if length > max_len:
        raise ProbeError("protocol", f"peer announced a {length}-byte {PDU_TYPES[kind]} (limit {max_len})")
    return head + _recv_exact(sock, length, deadline)


def dicom_associate(sock: socket.socket, deadline: float, called: str, calling: str) -> DicomPdu:
    """Send A-ASSOCIATE-RQ (Verification only), read the answer, then release or abort politely."""
    sock.sendall(associate_rq(called, calling))
    pdu = parse_pdu(read_pdu(sock, deadline))
    if pdu.type == 2:
        try:
            sock.sendall(RELEASE_RQ)
            read_pdu(sock, min(deadline, time.monotonic() + 2.0))
        except (ProbeError, OSError):
            pass   # the answer we needed is in; a peer that botches release is not our concern here
    elif pdu.type not in (3, 7):
        sock.sendall(ABORT)
        raise ProbeError("protocol", f"answered A-ASSOCIATE-RQ with {pdu.name}")
    return pdu


# ------------------------------------------------------------------------------------------------ HL7 MLLP

def mllp_frame(message: bytes) -> bytes:
    return MLLP_START + message + MLLP_END


def read_mllp_frame(sock: socket.socket, deadline: float, max_len: int = MAX_MLLP_FRAME) -> bytes:
    """The first MLLP frame's message. Bytes before the start block are skipped (some engines send CR/LF)."""
    buf = bytearray()
    while True:
        end = buf.find(MLLP_END)
        if end >= 0:
            start = buf.find(MLLP_START)
            if start < 0 or start > end:
                raise ProbeError("protocol", "MLLP end block without a start block")
            return bytes(buf[start + 1:end])
        if len(buf) > max_len:
            raise ProbeError("protocol", f"more than {max_len} bytes without an MLLP end block (flood)")
        left = deadline - time.monotonic()
        if left <= 0:
            what = "no answer" if not buf else f"{len(buf)} bytes but no MLLP end block"
            raise ProbeError("timeout", f"{what} before the deadline")
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            what = "no answer" if not buf else f"{len(buf)} bytes but no MLLP end block"
            raise ProbeError("timeout", f"{what} before the deadline") from None
        except OSError as e:
            raise ProbeError("connectivity", f"connection failed while reading: {e.strerror or e}") from None
        if not chunk:
            if not buf:
                raise ProbeError("connectivity", "connection closed without an answer")
            raise ProbeError("protocol", f"connection closed after {len(buf)} bytes without an MLLP end block")
        buf += chunk


def harmless_message(control_id: str, timestamp: str | None = None) -> bytes:
    """The only HL7 message tcmscan ever sends (why it is harmless: docs/checks/medical.md).

    A bare general acknowledgment (MSH-9 "ACK", no trigger event, so no filter on A01/O01/R01 can route it),
    processing id T (training), enhanced-mode MSH-15 AL (accept ack: "received") and MSH-16 NE (never an
    application ack), one MSA that refers to a control id that exists nowhere. No PID/PV1/ORC/OBR/OBX.
    """
    ts = timestamp or time.strftime("%Y%m%d%H%M%S")
    msh = f"MSH|^~\\&|TCMSCAN|SECURITY-ASSESSMENT|||{ts}||ACK|{control_id}|T|2.5|||AL|NE"
    msa = f"MSA|AA|{control_id}-NONE"
    return (msh + "\r" + msa + "\r").encode("ascii")


@dataclass
class Hl7Answer:
    message_type: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    version: str = ""
    processing_id: str = ""
    control_id: str = ""
    msa_code: str = ""
    msa_control_id: str = ""


def _text(b: bytes, n: int = 64) -> str:
    return b.decode("latin-1")[:n].strip()


def parse_hl7(message: bytes) -> Hl7Answer:
    """MSH and MSA of an HL7 v2 message (ER7). Raises ProbeError when there is no MSH."""
    segments = message.replace(b"\n", b"\r").split(b"\r")[:MAX_SEGMENTS]
    msh = next((s for s in segments if s.startswith(b"MSH")), None)
    if msh is None or len(msh) < 8:
        raise ProbeError("protocol", "answer has no MSH segment")
    sep = msh[3:4]
    if sep.isalnum() or sep in (b"\r", b" "):
        raise ProbeError("protocol", "MSH field separator is not a delimiter")
    f = msh.split(sep)
    comp = (f[1][:1] if len(f) > 1 and f[1][:1] else b"^")

    def field(i: int) -> bytes:   # MSH-n is f[n-1]: MSH-1 is the separator itself
        return f[i - 1] if len(f) > i - 1 else b""

    a = Hl7Answer(message_type=_text(field(9)).replace(comp.decode("latin-1"), "^"),
                  sending_application=_text(field(3).split(comp)[0]), sending_facility=_text(field(4).split(comp)[0]),
                  control_id=_text(field(10)), processing_id=_text(field(11).split(comp)[0], 3),
                  version=_text(field(12).split(comp)[0], 16))
    msa = next((s for s in segments if s.startswith(b"MSA" + sep)), None)
    if msa is not None:
        m = msa.split(sep)
        a.msa_code = _text(m[1], 2) if len(m) > 1 else ""
        a.msa_control_id = _text(m[2]) if len(m) > 2 else ""
    return a


# ------------------------------------------------------------------------------------------------ discovery

@dataclass
class Identified:
    name: str            # dicom | hl7-mllp | a banner signature's name (ssh, ftp, ...)
    product: str = ""
    version: str = ""
    extrainfo: str = ""


def _try(address: str, port: int, timeout: float, fn) -> Identified | None:
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            return fn(sock, deadline)
    except (ProbeError, OSError):
        return None


def _dicom(sock: socket.socket, deadline: float) -> Identified:
    pdu = dicom_associate(sock, deadline, random_ae("TCMPROBE"), random_ae("TCMSCAN"))
    extra = pdu.name if pdu.type != 3 else f"{pdu.name}: {pdu.reject_meaning}"
    return Identified("dicom", product=pdu.implementation_version_name, version=pdu.implementation_class_uid,
                      extrainfo=extra)


def _mllp(sock: socket.socket, deadline: float) -> Identified:
    sock.sendall(mllp_frame(harmless_message("TCMSCAN" + secrets.token_hex(4).upper())))
    a = parse_hl7(read_mllp_frame(sock, deadline))
    return Identified("hl7-mllp", product=a.sending_application, version=a.version,
                      extrainfo=f"MSA {a.msa_code}" if a.msa_code else "")


BANNER_WAIT = 1.0          # a server that talks first does so on accept; silence past this is silence
BANNER_MAX = 512


def identify_banner(address: str, port: int, signatures: list[dict[str, str]],
                    timeout: float = BANNER_WAIT) -> Identified | None:
    """The service a server names in what it sends first (one connection, nothing sent, bounded). Reading
    stops at the first signature that matches, at a full line, or at the deadline."""
    import re  # noqa: PLC0415

    def match(data: bytes) -> Identified | None:
        text = data.decode("latin-1")
        for sig in signatures:
            if re.search(sig["pattern"], text):
                first = text.splitlines()[0] if text.strip() else ""
                return Identified(sig["name"], extrainfo=f"banner: {first[:80]!r}")
        return None

    deadline = time.monotonic() + timeout
    data = b""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            while len(data) < BANNER_MAX and b"\n" not in data:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    chunk = sock.recv(BANNER_MAX - len(data))
                except TimeoutError:
                    break       # what came before the silence is the greeting (a telnet negotiation has no newline)
                if not chunk:
                    break
                data += chunk
                found = match(data)
                if found:
                    return found
    except OSError:
        return None
    return match(data)


def identify(address: str, port: int, expected: str = "", timeout: float = 3.0) -> Identified | None:
    """DICOM or MLLP? Both tried at once, one connection each (a port that is neither holds each try until its
    timeout: in turn they cost twice that); the expected protocol's answer wins if both answer."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    order = [_mllp, _dicom] if expected == "hl7-mllp" else [_dicom, _mllp]
    with ThreadPoolExecutor(max_workers=2) as pool:
        tries = [pool.submit(_try, address, port, timeout, fn) for fn in order]
        return next((found for found in (t.result() for t in tries) if found), None)


def tftp_answers(address: str, port: int = 69, timeout: float = 2.0) -> bool:
    """Is a TFTP server on `port`/udp?  One read request for a random name no server holds; any TFTP server
    answers ERROR (opcode 5) or DATA (3) -- from a new port of its own (RFC 1350 transfer ids), which is why
    nmap -sU, matching answers by port, reports it open|filtered.  A read, and of nothing."""
    name = f"tcmscan-{secrets.token_hex(6)}".encode()
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(b"\x00\x01" + name + b"\x00octet\x00", (address, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data, (peer, _port) = s.recvfrom(1024)
                if peer == address and data[:2] in (b"\x00\x03", b"\x00\x05"):
                    return True
        except OSError:
            return False
    return False
