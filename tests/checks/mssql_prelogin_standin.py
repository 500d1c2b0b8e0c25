"""A SQL Server PRELOGIN stand-in (no SQL Server runs on Debian): it answers a client's TDS PRELOGIN and nothing
else. NOT a SQL Server: no login, no TLS, no queries; a second packet (LOGIN7, a TLS ClientHello inside TDS) is
answered by closing the connection.

The answer is built the way real servers answer ([MS-TDS] 2.2.6.5, "PRELOGIN"; packet type 0x04, status EOM):

    04 01 00 25 00 00 01 00                  header: reply, EOM, length 37, SPID 0, packet 1, window 0
    00 00 15 00 06                           VERSION    at 0x15, 6 bytes
    01 00 1b 00 01                           ENCRYPTION at 0x1b, 1 byte
    02 00 1c 00 01                           INSTOPT    at 0x1c, 1 byte
    03 00 1d 00 00                           THREADID   at 0x1d, 0 bytes (empty from a server)
    ff                                       terminator
    0f 00 07 d0 00 05                        version 15.0.2000.5 (SQL Server 2019 RTM)
    <encryption>                             ENCRYPT_OFF 00 / ENCRYPT_ON 01 / ENCRYPT_NOT_SUP 02 / ENCRYPT_REQ 03
    00                                       INSTOPT: the instance name matched

This is byte for byte the shape nmap 7.93's nmap-service-probes matches for real servers (probe `ms-sql-s`,
e.g. `match ms-sql-s m|^\\x04\\x01\\x00\\x25\\x00\\x00\\x01\\x00\\x00\\x00\\x15\\x00\\x06\\x01\\x00\\x1b\\x00\\x01\\x02
\\x00\\x1c\\x00\\x01\\x03\\x00\\x1d\\x00\\x00\\xff\\x0f\\x00(..)|s p/Microsoft SQL Server 2019/ v/15.00.$I(1,">")/`, captured
answers of SQL Server 2000 to 2019 to nmap's PRELOGIN), with only the ENCRYPTION byte varying; the encryption
values are those of the spec and of impacket's tds.py (TDS_ENCRYPT_OFF 0 ... TDS_ENCRYPT_REQ 3).
"""

from __future__ import annotations

import socket
import threading

from checks.services import _wire as wire
from tests.loopback import wait_port

VERSION_2019 = bytes.fromhex("0f0007d00005")          # 15.0.2000.5


def prelogin_answer(encryption: int, version: bytes = VERSION_2019) -> bytes:
    return wire.tds_packet(wire.TDS_REPLY, wire.prelogin_payload([
        (0x00, version), (0x01, bytes([encryption])), (0x02, b"\x00"), (0x03, b"")]))


class MssqlPreloginStandin:
    """Listens on address:port; answers each PRELOGIN with `prelogin_answer(encryption)`; records requests."""

    def __init__(self, address: str, encryption: int, port: int = 1433) -> None:
        self.answer = prelogin_answer(encryption)
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        wait_port(address, port)

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _packet(self, conn: socket.socket) -> bytes:
        buf = b""
        while not wire.tds_packet_complete(buf) and len(buf) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return b""
            buf += chunk
        return buf

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(8)
        try:
            with conn:
                first = self._packet(conn)
                if not first:
                    return
                self.requests.append(first)
                if first[0] == wire.TDS_PRELOGIN:
                    conn.sendall(self.answer)
                    self._packet(conn)          # whatever comes next: we are no SQL Server; close
        except OSError:
            pass

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()
