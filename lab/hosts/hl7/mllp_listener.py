"""lab hl7: a small MLLP listener that ACKs (MSA|AA) any HL7 v2 message, on each port named (2575 by default).

Planted: no authentication, no TLS.  It parses only MSH to build the ACK and keeps
nothing it receives.
"""

from __future__ import annotations

import socketserver
import time

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
MAX_MESSAGE = 1 << 20


def build_ack(message: bytes) -> bytes:
    segments = message.replace(b"\n", b"\r").split(b"\r")
    msh = next((s for s in segments if s.startswith(b"MSH")), b"MSH|^~\\&")
    sep = msh[3:4] or b"|"
    fields = msh.split(sep)

    def field(i: int) -> bytes:
        return fields[i] if len(fields) > i else b""

    # MSH-n is fields[n-1] because MSH-1 is the separator itself.
    trigger = field(8).split(b"^")[1] if b"^" in field(8) else b""
    control_id = field(9)
    now = time.strftime("%Y%m%d%H%M%S").encode()
    ack_msh = sep.join([
        b"MSH", field(1) or b"^~\\&", b"HL7ENGINE", b"LAB", field(2), field(3), now, b"",
        b"ACK^" + trigger + b"^ACK", b"ACK" + now, field(10) or b"P", field(11) or b"2.5",
    ])
    msa = sep.join([b"MSA", b"AA", control_id, b"Message accepted"])
    return SB + ack_msh + CR + msa + CR + EB + CR


class MLLPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(30)
        buf = b""
        while True:
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            if len(buf) > MAX_MESSAGE:
                return
            while EB + CR in buf:
                frame, buf = buf.split(EB + CR, 1)
                start = frame.find(SB)
                self.request.sendall(build_ack(frame[start + 1:] if start >= 0 else frame))


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    import sys
    import threading
    ports = [int(p) for p in sys.argv[1:]] or [2575]
    servers = [Server(("0.0.0.0", port), MLLPHandler) for port in ports]
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
