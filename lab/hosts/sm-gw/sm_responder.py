"""lab sm-gw: a MINIMAL ShangMi HANDSHAKE RESPONDER -- not a TLS stack.

No Debian TLS server speaks RFC 8998 or TLCP (GB/T 38636-2020), so this fake answers
just enough for detection tests:

- a TLS 1.3 ClientHello (supported_versions lists 0x0304) offering TLS_SM4_GCM_SM3
  (0x00C6) gets a TLS 1.3 ServerHello selecting 0x00C6 (key_share echoes the client's
  first group with random bytes; no certificate, no Finished);
- a TLCP ClientHello (record and client version 0x0101) offering ECC_SM4_CBC_SM3
  (0xE013) gets a TLCP ServerHello selecting 0xE013;
- anything else gets a fatal handshake_failure alert.

After answering, the connection is closed.
"""

from __future__ import annotations

import os
import socketserver
import struct

TLS13 = 0x0304
TLCP = 0x0101
TLS_SM4_GCM_SM3 = 0x00C6
ECC_SM4_CBC_SM3 = 0xE013
EXT_SUPPORTED_VERSIONS = 0x002B
EXT_KEY_SHARE = 0x0033


class ClientHello:
    def __init__(self, record_version: int, body: bytes) -> None:
        self.record_version = record_version
        self.version = struct.unpack_from("!H", body, 0)[0]
        pos = 2 + 32
        sid_len = body[pos]
        self.session_id = body[pos + 1: pos + 1 + sid_len]
        pos += 1 + sid_len
        cs_len = struct.unpack_from("!H", body, pos)[0]
        pos += 2
        self.suites = [struct.unpack_from("!H", body, pos + i)[0] for i in range(0, cs_len, 2)]
        pos += cs_len
        pos += 1 + body[pos]  # compression methods
        self.extensions: dict[int, bytes] = {}
        if pos + 2 <= len(body):
            ext_end = pos + 2 + struct.unpack_from("!H", body, pos)[0]
            pos += 2
            while pos + 4 <= ext_end:
                etype, elen = struct.unpack_from("!HH", body, pos)
                self.extensions[etype] = body[pos + 4: pos + 4 + elen]
                pos += 4 + elen

    def supported_versions(self) -> list[int]:
        data = self.extensions.get(EXT_SUPPORTED_VERSIONS, b"")
        return [struct.unpack_from("!H", data, 1 + i)[0] for i in range(0, data[0] if data else 0, 2)]

    def first_key_share(self) -> tuple[int, int] | None:
        data = self.extensions.get(EXT_KEY_SHARE, b"")
        if len(data) < 6:
            return None
        group, klen = struct.unpack_from("!HH", data, 2)
        return group, klen


def _record(version: int, content_type: int, payload: bytes) -> bytes:
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def _handshake(msg_type: int, body: bytes) -> bytes:
    return struct.pack("!B", msg_type) + len(body).to_bytes(3, "big") + body


def _alert(version: int) -> bytes:
    return _record(version, 21, bytes([2, 40]))  # fatal handshake_failure


def server_hello_tls13(hello: ClientHello) -> bytes:
    exts = struct.pack("!HHH", EXT_SUPPORTED_VERSIONS, 2, TLS13)
    share = hello.first_key_share()
    if share:
        group, klen = share
        entry = struct.pack("!HH", group, klen) + os.urandom(klen)
        exts += struct.pack("!HH", EXT_KEY_SHARE, len(entry)) + entry
    body = (struct.pack("!H", 0x0303) + os.urandom(32) + bytes([len(hello.session_id)]) + hello.session_id
            + struct.pack("!HB", TLS_SM4_GCM_SM3, 0) + struct.pack("!H", len(exts)) + exts)
    return _record(0x0303, 22, _handshake(2, body))


def server_hello_tlcp(hello: ClientHello) -> bytes:
    body = (struct.pack("!H", TLCP) + os.urandom(32) + bytes([32]) + os.urandom(32)
            + struct.pack("!HB", ECC_SM4_CBC_SM3, 0))
    return _record(TLCP, 22, _handshake(2, body))


def respond(data: bytes) -> bytes:
    """The bytes to answer one ClientHello record with (also used by unit tests)."""
    if len(data) < 9 or data[0] != 22 or data[5] != 1:
        return _alert(0x0303)
    record_version = struct.unpack_from("!H", data, 1)[0]
    try:
        hello = ClientHello(record_version, data[9: 9 + int.from_bytes(data[6:9], "big")])
    except (IndexError, struct.error):
        return _alert(record_version if record_version in (TLCP, 0x0301, 0x0303) else 0x0303)
    if record_version == TLCP and hello.version == TLCP and ECC_SM4_CBC_SM3 in hello.suites:
        return server_hello_tlcp(hello)
    if TLS13 in hello.supported_versions() and TLS_SM4_GCM_SM3 in hello.suites:
        return server_hello_tls13(hello)
    return _alert(TLCP if record_version == TLCP else 0x0303)


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(10)
        data = b""
        try:
            while len(data) < 5 or len(data) < 5 + struct.unpack_from("!H", data, 3)[0]:
                chunk = self.request.recv(16384)
                if not chunk:
                    return
                data += chunk
                if len(data) > 65536:
                    break
            self.request.sendall(respond(data))
        except OSError:
            return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    with Server(("0.0.0.0", 443), Handler) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    main()
