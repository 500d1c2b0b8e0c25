"""lab hostile hosts: DELIBERATELY MISBEHAVING network services -- our own program, not a real daemon.

No Debian daemon misbehaves on purpose, so the lab's fault-injection hosts (lab/topology.yaml,
`hostile: true`) run this one small asyncio program.  `lab up` writes its configuration
(/usr/local/lib/lab/hostile.json) from the topology: one listener per service that names a
`behaviour`, and optionally `flap`, which makes the host's own address disappear and reappear.

Behaviours (what each does to every connection or datagram):
  silent                accept, read and discard, never answer
  drip                  the port's protocol greeting, then one byte a second, for ever
  flood                 the port's protocol greeting followed by 10 MB without a line end, then silence
  reset                 accept, then reset the connection (RST) 0.5 s later, before reading anything
  ssh-garbage-kexinit   an SSH banner, then a KEXINIT whose first name-list claims 2 GiB
  ssh-endless-kexinit   an SSH banner, then a KEXINIT packet claiming 4 GiB whose name-list never ends
  tls-malformed-hello   any ClientHello gets a ServerHello with a 200-byte session id and a truncated body
  tls-absurd-certs      a real TLS server (Python ssl) with the absurd 50-certificate chain lab/pki.py makes
  http-redirect-loop    / redirects to /loop, /loop redirects to /
  http-huge-headers     a 1 MiB header line and 10,000 more headers
  http-gzip-bomb        an unrequested gzip body that inflates to 1 GiB (a login page, then zeros)
  http-endless-chunked  a chunked body that never ends
  dicom-malformed-pdu   an A-ASSOCIATE-AC whose items are garbage
  dicom-absurd-length   an A-ASSOCIATE-AC announcing 4 GiB, then garbage, forever
  mllp-no-end-block     an HL7 ACK framed without the MLLP end block, then silence
  mllp-flood            an MLLP start block, then HL7 text forever, never the end block
  snmp-wrong-types      (udp) a response whose version, community, request id and error status have the wrong
                        ASN.1 types
  snmp-wrong-value-types (udp) a well-formed response echoing community and request id, every value of a
                        wrong type (sysDescr an INTEGER, sysObjectID an OCTET STRING with escapes, ...)

Every connection ends after MAX_CONNECTION_SECONDS whatever the client does, and at most MAX_CONNECTIONS
run at once, so a forgotten client cannot pile up work here.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import zlib

MAX_CONNECTION_SECONDS = 600
MAX_CONNECTIONS = 256
READ_LIMIT = 64 * 1024
FLOOD_BYTES = 10 * 1000 * 1000
RESET_AFTER = 0.5     # s: far longer than a busy client takes to return from connect()
BOMB_BYTES = 1 << 30

# What a client of the port expects to hear first (drip and flood send this, then filler).
GREETINGS = {
    21: b"220 ", 25: b"220 ", 22: b"SSH-2.0-", 23: b"\xff\xfb\x01\xff\xfb\x03",
    80: b"HTTP/1.1 200 OK\r\nX-Hostile: ", 8080: b"HTTP/1.1 200 OK\r\nX-Hostile: ",
    443: b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03", 8443: b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03",
    3306: b"\xff\xff\xff\x00\x0a5.5.5-", 6379: b"+PONG", 104: b"\x02\x00\x00\x00\xff\xff\x00\x01",
    11112: b"\x02\x00\x00\x00\xff\xff\x00\x01", 2575: b"\x0bMSH|^~\\&|HOSTILE|",
}
TCP_BEHAVIOURS = ("silent", "drip", "flood", "reset", "ssh-garbage-kexinit", "ssh-endless-kexinit",
                  "tls-malformed-hello", "tls-absurd-certs", "http-redirect-loop", "http-huge-headers",
                  "http-gzip-bomb", "http-endless-chunked", "dicom-malformed-pdu", "dicom-absurd-length",
                  "mllp-no-end-block", "mllp-flood")
UDP_BEHAVIOURS = ("snmp-wrong-types", "snmp-wrong-value-types")
BEHAVIOURS = TCP_BEHAVIOURS + UDP_BEHAVIOURS

ABSURD_TITLE = "<script>alert('tcmscan')</script>\x1b[2J\x1b[31mhostile\x1b[0m"
BOMB_PAGE = (b"<html><head><title>hostile gzip bomb</title></head><body><form method=post action=/login>"
             b"<input name=user><input type=password name=pass></form>")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ small helpers

async def _read_until(reader: asyncio.StreamReader, done, timeout: float = 10.0) -> bytes:
    """What the client sends until done(buffer), EOF, READ_LIMIT bytes or `timeout`."""
    buf = b""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not done(buf) and len(buf) < READ_LIMIT:
        left = end - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(4096), left)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


async def _drain_input(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client closes (or resets: its right)."""
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass


async def _send_forever(writer: asyncio.StreamWriter, chunk: bytes, pause: float = 0.0) -> None:
    """Write `chunk` again and again (as fast as the client reads, or every `pause` s) until it goes away."""
    while not writer.is_closing():
        writer.write(chunk)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)


def _ssh_packet(payload: bytes) -> bytes:
    pad = 8 - (len(payload) + 5) % 8
    pad += 8 if pad < 4 else 0
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + bytes(pad)


def _http_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


def _request_path(request: bytes) -> str:
    parts = request.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].decode("latin-1") if len(parts) >= 2 else "/"


def gzip_bomb() -> bytes:
    """A gzip stream of BOMB_PAGE followed by zeros, BOMB_BYTES in all once inflated (about 1 MB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(BOMB_PAGE)]
    zeros = bytes(1 << 20)
    for _ in range((BOMB_BYTES - len(BOMB_PAGE)) // len(zeros)):
        parts.append(c.compress(zeros))
    parts.append(c.flush())
    return b"".join(parts)


# ------------------------------------------------------------------------------ TCP behaviours

class Behaviours:
    def __init__(self, tls_files: dict[str, str] | None) -> None:
        self._bomb: bytes | None = None
        self._flood = memoryview(b"A" * FLOOD_BYTES)
        self.tls_files = tls_files or {}

    def bomb(self) -> bytes:
        if self._bomb is None:
            self._bomb = gzip_bomb()
        return self._bomb

    async def silent(self, reader, writer, port):
        await _drain_input(reader)

    async def drip(self, reader, writer, port):
        # the greeting in one segment, then a byte a second: what nmap -sV has seen after its waits is the same on
        # every run (dripped byte by byte, a MySQL header of exactly 6 bytes matched nmap's msdtc pattern at
        # times, and creds.default then did not apply)
        asyncio.ensure_future(_drain_input(reader))
        writer.write(GREETINGS.get(port, b""))
        for _ in range(MAX_CONNECTION_SECONDS):
            if writer.is_closing():
                return
            await writer.drain()
            await asyncio.sleep(1.0)
            writer.write(b"A")

    async def flood(self, reader, writer, port):
        asyncio.ensure_future(_drain_input(reader))
        writer.write(GREETINGS.get(port, b""))
        for i in range(0, FLOOD_BYTES, 65536):
            writer.write(self._flood[i:i + 65536])
            await writer.drain()
        await _drain_input(reader)

    async def reset(self, reader, writer, port):
        # 0.5 s after the handshake, before anything is read: every client has finished connecting by then and
        # meets the reset on its first read or write, the same way on every run
        await asyncio.sleep(RESET_AFTER)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def ssh_garbage_kexinit(self, reader, writer, port):
        writer.write(b"SSH-2.0-hostile_garbage_kexinit\r\n")
        await _read_until(reader, lambda b: b"\n" in b)
        payload = (bytes([20]) + os.urandom(16) + struct.pack(">I", 0x7FFFFFF0) + b"curve25519-sha256,"
                   + bytes(range(256)))
        writer.write(_ssh_packet(payload))
        await writer.drain()
        await _drain_input(reader)

    async def ssh_endless_kexinit(self, reader, writer, port):
        writer.write(b"SSH-2.0-hostile_endless_kexinit\r\n")
        await _read_until(reader, lambda b: b"\n" in b)
        asyncio.ensure_future(_drain_input(reader))
        # length 0xFFFFFFFC: a multiple of the block size once the first block is read, as a client checks
        writer.write(struct.pack(">IB", 0xFFFFFFFC, 4) + bytes([20]) + os.urandom(16)
                     + struct.pack(">I", 0xFFFFFF00))
        await _send_forever(writer, b"curve25519-sha256," * 3640)

    async def tls_malformed_hello(self, reader, writer, port):
        await _read_until(reader, lambda b: len(b) >= 5 and len(b) >= 5 + int.from_bytes(b[3:5], "big"))
        # ServerHello: a 200-byte session id (at most 32 allowed), and the message ends inside it
        body = b"\x03\x03" + os.urandom(32) + bytes([200]) + os.urandom(40)
        hello = bytes([2]) + len(body).to_bytes(3, "big") + body
        writer.write(struct.pack("!BHH", 22, 0x0303, len(hello)) + hello)
        await writer.drain()
        await _drain_input(reader)

    async def tls_absurd_certs(self, reader, writer, port):
        await _read_until(reader, lambda b: b"\r\n\r\n" in b)
        page = f"<html><head><title>{ABSURD_TITLE}</title></head><body>absurd certificates</body></html>"
        body = page.encode()
        writer.write(_http_head("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                           ("Content-Length", str(len(body))), ("Connection", "close")]) + body)
        await writer.drain()

    async def http_redirect_loop(self, reader, writer, port):
        path = _request_path(await _read_until(reader, lambda b: b"\r\n\r\n" in b))
        target = "/" if path == "/loop" else "/loop"
        writer.write(_http_head("302 Found", [("Location", target), ("Content-Length", "0"),
                                              ("Connection", "close")]))
        await writer.drain()

    async def http_huge_headers(self, reader, writer, port):
        await _read_until(reader, lambda b: b"\r\n\r\n" in b)
        asyncio.ensure_future(_drain_input(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (1 << 20) + b"\r\n")
        for i in range(10000):
            writer.write(b"X-Many-%d: %s\r\n" % (i, b"m" * 100))
            if i % 500 == 0:
                await writer.drain()
        writer.write(b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    async def http_gzip_bomb(self, reader, writer, port):
        await _read_until(reader, lambda b: b"\r\n\r\n" in b)
        bomb = self.bomb()
        writer.write(_http_head("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip"),
                                           ("Content-Length", str(len(bomb))), ("Connection", "close")]))
        for i in range(0, len(bomb), 65536):
            writer.write(bomb[i:i + 65536])
            await writer.drain()

    async def http_endless_chunked(self, reader, writer, port):
        await _read_until(reader, lambda b: b"\r\n\r\n" in b)
        asyncio.ensure_future(_drain_input(reader))
        writer.write(_http_head("200 OK", [("Content-Type", "text/html"), ("Transfer-Encoding", "chunked")]))
        text = b"<p>" + b"endless " * 510 + b"</p>\n"
        await _send_forever(writer, b"%x\r\n%s\r\n" % (len(text), text))

    async def dicom_malformed_pdu(self, reader, writer, port):
        await self._read_pdu(reader)
        # A-ASSOCIATE-AC: protocol version, reserved, AE titles, reserved, then items that are garbage
        body = b"\x00\x01\x00\x00" + b"HOSTILE".ljust(16) + b"TCMSCAN".ljust(16) + bytes(32) + b"\xff" * 40
        writer.write(struct.pack(">BBI", 2, 0, len(body)) + body)
        await writer.drain()
        await _drain_input(reader)

    async def dicom_absurd_length(self, reader, writer, port):
        await self._read_pdu(reader)
        asyncio.ensure_future(_drain_input(reader))
        writer.write(struct.pack(">BBI", 2, 0, 0xFFFFFFFF))
        await _send_forever(writer, os.urandom(65536))

    async def mllp_no_end_block(self, reader, writer, port):
        await _read_until(reader, lambda b: b"\x1c\x0d" in b)
        writer.write(b"\x0bMSH|^~\\&|HOSTILE|LAB|||20240101000000||ACK|HOSTILE1|P|2.5\rMSA|AA|HOSTILE1\r")
        await writer.drain()
        await _drain_input(reader)

    async def mllp_flood(self, reader, writer, port):
        await _read_until(reader, lambda b: b"\x1c\x0d" in b)
        asyncio.ensure_future(_drain_input(reader))
        writer.write(b"\x0b")
        await _send_forever(writer, b"MSH|^~\\&|FLOOD|LAB|||20240101000000||ACK|F|P|2.5\r" * 1000)

    @staticmethod
    async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
        return await _read_until(reader, lambda b: len(b) >= 6 and len(b) >= 6 + int.from_bytes(b[2:6], "big"))


# ------------------------------------------------------------------------------ SNMP (BER by hand)

def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + value


def _parse_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, next position) of the BER element at `pos`; ValueError on anything odd."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 2:
            raise ValueError("length")
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + n > len(data):
        raise ValueError("truncated")
    return tag, data[pos:pos + n], pos + n


def parse_request(datagram: bytes) -> tuple[bytes, bytes, bytes, list[bytes]]:
    """(version, community, request id content bytes, requested OIDs as encoded) of a v1/v2c request."""
    tag, msg, _ = _parse_tlv(datagram, 0)
    if tag != 0x30:
        raise ValueError("not a sequence")
    _, version, p = _parse_tlv(msg, 0)
    _, community, p = _parse_tlv(msg, p)
    _, pdu, _ = _parse_tlv(msg, p)
    _, request_id, q = _parse_tlv(pdu, 0)
    _, _status, q = _parse_tlv(pdu, q)
    _, _index, q = _parse_tlv(pdu, q)
    _, binds, _ = _parse_tlv(pdu, q)
    oids, r = [], 0
    while r < len(binds):
        _, bind, r = _parse_tlv(binds, r)
        _, oid, _ = _parse_tlv(bind, 0)
        oids.append(oid)
    return version, community, request_id, oids


def snmp_answer(behaviour: str, datagram: bytes) -> bytes | None:
    try:
        version, community, request_id, oids = parse_request(datagram)
    except (ValueError, IndexError):
        return None
    if behaviour == "snmp-wrong-types":
        # version and request id as OCTET STRINGs, community as an INTEGER, error status as an OID
        binds = b"".join(_tlv(0x30, _tlv(0x06, o) + _tlv(0x04, b"x")) for o in oids)
        pdu = _tlv(0x04, request_id) + _tlv(0x06, b"\x2b\x06") + _tlv(0x02, b"\x00") + _tlv(0x30, binds)
        return _tlv(0x30, _tlv(0x04, version) + _tlv(0x02, b"\x7f\xff") + _tlv(0xA2, pdu))
    values = [_tlv(0x02, b"\x7f" + b"\xff" * 15),                       # an INTEGER of 128 bits
              _tlv(0x04, b"\x1b[31m<script>1</script>\x1b[0m"),        # text where an OID belongs
              _tlv(0x46, b"\x01" * 8),                                  # Counter64
              _tlv(0x06, b"\x2b\x06\x01")]                              # an OID where text belongs
    binds = b"".join(_tlv(0x30, _tlv(0x06, o) + values[i % len(values)]) for i, o in enumerate(oids))
    pdu = _tlv(0x02, request_id) + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00") + _tlv(0x30, binds)
    return _tlv(0x30, _tlv(0x02, version) + _tlv(0x04, community) + _tlv(0xA2, pdu))


class SnmpProtocol(asyncio.DatagramProtocol):
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        answer = snmp_answer(self.behaviour, data)
        if answer is not None:
            self.transport.sendto(answer, addr)


# ------------------------------------------------------------------------------ the program

def validate(config: dict) -> list[dict]:
    """The listeners of a configuration; ValueError naming the first unknown behaviour or protocol."""
    listeners = list(config.get("listeners") or [])
    for item in listeners:
        proto, behaviour = item.get("proto", "tcp"), item.get("behaviour")
        allowed = TCP_BEHAVIOURS if proto == "tcp" else UDP_BEHAVIOURS if proto == "udp" else ()
        if behaviour not in allowed:
            raise ValueError(f"port {item.get('port')}/{proto}: unknown behaviour {behaviour!r}")
    return listeners


async def flap(address: str, prefix: int, first_up: float, up: float, down: float) -> None:
    """Remove the host's own address for `down` s, put it back for `up` s, for ever (after `first_up` s)."""
    await asyncio.sleep(first_up)
    cidr = f"{address}/{prefix}"
    while True:
        subprocess.run(["ip", "addr", "del", cidr, "dev", "eth0"], check=False)
        log(f"flap: {cidr} removed")
        await asyncio.sleep(down)
        subprocess.run(["ip", "addr", "add", cidr, "dev", "eth0"], check=False)
        log(f"flap: {cidr} back")
        await asyncio.sleep(up)


async def main(config: dict) -> None:
    listeners = validate(config)
    behaviours = Behaviours(config.get("tls"))
    if any(item["behaviour"] == "http-gzip-bomb" for item in listeners):
        behaviours.bomb()     # made before listening: the first client does not wait for it
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    loop = asyncio.get_running_loop()
    # handshakes our probes break off on purpose are not news worth a log line each
    loop.set_exception_handler(lambda _loop, ctx: None)
    for item in listeners:
        port, behaviour = int(item["port"]), item["behaviour"]
        if item.get("proto", "tcp") == "udp":
            await loop.create_datagram_endpoint(lambda b=behaviour: SnmpProtocol(b), local_addr=("0.0.0.0", port))
            log(f"listening on {port}/udp: {behaviour}")
            continue
        handler = getattr(behaviours, behaviour.replace("-", "_"))
        tls = None
        if behaviour == "tls-absurd-certs":
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(behaviours.tls_files["chain"], behaviours.tls_files["key"])

        async def serve(reader, writer, handler=handler, port=port):
            async with slots:
                try:
                    await asyncio.wait_for(handler(reader, writer, port), MAX_CONNECTION_SECONDS)
                except (TimeoutError, OSError, ssl.SSLError):
                    pass
                finally:
                    writer.transport.abort()

        await asyncio.start_server(serve, "0.0.0.0", port, ssl=tls, reuse_address=True, backlog=128)
        log(f"listening on {port}/tcp: {behaviour}")
    f = config.get("flap")
    if f:
        loop.create_task(flap(config["address"], int(config["prefix"]), float(f["first_up"]), float(f["up"]),
                              float(f["down"])))
    await asyncio.Event().wait()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    try:
        validate(cfg)
    except ValueError as e:
        sys.exit(f"hostile_services: {e}")
    asyncio.run(main(cfg))
