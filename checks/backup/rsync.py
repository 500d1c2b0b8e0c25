"""backup.rsync: does an rsync daemon list its modules to anyone? (rsync daemon protocol, text lines)

We greet with `@RSYNCD: <version>` and ask for the module list (`#list`, as rsync clients do), the same
exchange as `rsync rsync://host/`. Only module names are recorded, never their comments or contents; no
module is opened. Written by hand because it is three text lines (no maintained Python client exists:
rsync's own `clientserver.c` is the reference for the exchange).
"""

from __future__ import annotations

import re
import socket
import time

from scanner.sdk import CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation

META = CheckMeta(
    id="backup.rsync",
    version="1.0",
    title_zh="rsync 服务匿名模块列表",
    title_en="rsync daemon anonymous module listing",
    granularity="service",
    services=("rsync",),
    ports=(873,),
    timeout=20.0,
    description="rsync daemon greeting and `#list`; records module names only.",
)
MAX_BYTES = 64 * 1024
MAX_MODULES = 500
GREETING = re.compile(r"^@RSYNCD: (\d+)(?:\.(\d+))?")
MODULE = re.compile(r"^([^\t\s@#][^\t]{0,127}?)\s*(?:\t.*)?$")


class Lines:
    """Bounded line reader over a socket: at most MAX_BYTES in total, each read within the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buf, self.total, self.eof = sock, deadline, b"", 0, False

    def readline(self) -> str | None:
        while b"\n" not in self.buf:
            if self.eof or self.total >= MAX_BYTES:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode("utf-8", "replace").rstrip("\r")
                return None
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                self.eof = True
            self.total += len(chunk)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")


def parse_listing(greeting: str, lines: list[str]) -> dict:
    """Facts from the greeting and the lines after `#list` (pure: tested with hypothesis)."""
    m = GREETING.match(greeting)
    if not m:
        raise ValueError("no @RSYNCD greeting")
    modules: list[str] = []
    error = ""
    ended = False
    for line in lines:
        if line.startswith("@RSYNCD: EXIT"):
            ended = True
            break
        if line.startswith("@ERROR"):
            error = line[:200]
            break
        mm = MODULE.match(line)
        if mm and "\t" in line and len(modules) < MAX_MODULES:
            modules.append(mm.group(1).strip()[:128])
    return {"protocol": f"{m.group(1)}.{m.group(2) or 0}", "listed": bool(modules), "modules": modules,
            "complete": ended, "error": error}


def run(ctx: CheckContext) -> list[Observation]:
    sock = ctx.connect(timeout=5)
    try:
        reader = Lines(sock, time.monotonic() + min(10.0, ctx.remaining()))
        try:
            greeting = reader.readline() or ""
            if not GREETING.match(greeting):
                raise CheckNotApplicable(f"no rsync greeting on port {ctx.port}: {greeting[:40]!r}")
            m = GREETING.match(greeting)
            ours = min(int(m.group(1)), 31) if m else 31
            sock.sendall(f"@RSYNCD: {ours}.0\n#list\n".encode())
            lines: list[str] = []
            while True:
                line = reader.readline()
                if line is None:
                    break
                lines.append(line)
                if line.startswith(("@RSYNCD: EXIT", "@ERROR")) or len(lines) > MAX_MODULES + 50:
                    break
        except TimeoutError:
            raise CheckError("timeout", f"rsync daemon on {ctx.address}:{ctx.port} stopped answering") from None
        except OSError as e:
            raise CheckError("connectivity", f"{ctx.address}:{ctx.port}: {e}") from None
    finally:
        sock.close()
    # MOTD lines carry no tab; module lines are "name<TAB>comment" (or "name" padded to 15 + TAB)
    return [ctx.observation("rsync-modules", parse_listing(greeting, lines))]
