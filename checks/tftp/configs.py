"""tftp.configs: does a TFTP server hand out device configuration files (and passwords in them)?

For each name of the knowledge table `tftp_config_files` (a short sourced list), one read request (RRQ,
octet mode, no options) from a fresh UDP port, as RFC 1350 describes; every datagram goes through the
check context (scope, pacing). A file that comes back is read to its end within `max_bytes` and
TRANSFER_SECONDS, scanned line by line for credential-like lines (the table's patterns), and dropped: the
observation keeps its name, its size and whether (and which pattern ids) matched -- never a line of it.
Nothing is written: no WRQ is ever sent.

Bounds: a first request that gets no answer (once repeated, as RFC 1350 wants) ends the attempt as "not
assessed" (timeout); a transfer larger than `max_bytes`, one that does not end within its time, or a flood of
stray datagrams is aborted with an ERROR packet and the attempt ends as "not assessed" with the reason.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from checks.tftp import _wire as wire
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="tftp.configs",
    version="1.0",
    title_zh="TFTP服务器泄露设备配置文件",
    title_en="TFTP server hands out device configuration files",
    granularity="service",
    proto="udp",
    services=("tftp",),
    ports=(69,),
    capabilities=("AUTH", "STCF"),
    timeout=60.0,
    description="One TFTP read request (RRQ) per name of a short sourced list of device configuration files; "
                "records name, size and whether credential-like lines are present (never the content).",
)
PACKET_WAIT = 2.5         # per datagram; RFC 1350: repeat the last packet once when nothing comes
TRANSFER_SECONDS = 10.0
MAX_STRAY = 200           # datagrams that are not the next block, before we call it a flood
MAX_LINE = 400            # characters of a line the credential patterns look at


@dataclass
class Transfer:
    status: str            # found | not-found | denied | error
    size: int = 0
    content: bytes = b""
    message: str = ""


def table(ctx: CheckContext) -> tuple[list[str], list[tuple[str, re.Pattern[str]]], int]:
    t = ctx.knowledge.get("tftp_config_files") or {}
    names = [str(f["name"]) for f in t.get("files") or []]
    if not names:
        raise CheckError("unsupported", "knowledge table tftp_config_files lists no files")
    patterns = [(str(p["id"]), re.compile(str(p["regex"]), re.IGNORECASE)) for p in t.get("credential_patterns") or []]
    return names, patterns, int(t.get("max_bytes", 262144))


def credential_kinds(content: bytes, patterns: list[tuple[str, re.Pattern[str]]]) -> list[str]:
    """Ids of the patterns some line of `content` matches. The lines stay here."""
    found: set[str] = set()
    for raw in content.splitlines():
        line = raw[:MAX_LINE].decode("utf-8", "replace")
        for pid, rx in patterns:
            if pid not in found and rx.search(line):
                found.add(pid)
    return sorted(found)


def fetch(ctx: CheckContext, name: str, max_bytes: int) -> Transfer:
    """One read transfer of `name`; raises CheckError when the server does not answer or breaks the bounds."""
    family = socket.AF_INET6 if ":" in ctx.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    server = (ctx.address, ctx.port or 69)
    tid: int | None = None            # the server's port for this transfer (RFC 1350 "transfer ID")

    def send(packet: bytes, port: int) -> None:
        ctx.allow()
        sock.sendto(packet, (ctx.address, port))

    try:
        last, last_port = wire.rrq(name), server[1]
        send(last, last_port)
        content = b""
        expected, repeated, stray = 1, False, 0
        deadline = time.monotonic() + min(TRANSFER_SECONDS, ctx.remaining())
        while True:
            left = min(PACKET_WAIT, deadline - time.monotonic())
            if left <= 0:
                _abort(sock, ctx, tid, "transfer time limit")
                raise CheckError("timeout", f"TFTP {name}: transfer not done within {TRANSFER_SECONDS:.0f} s "
                                            f"({len(content)} bytes so far)")
            sock.settimeout(left)
            try:
                datagram, peer = sock.recvfrom(wire.MAX_DATAGRAM + 1)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    continue
                if repeated:
                    raise CheckError("timeout", f"TFTP {name}: no answer within {2 * PACKET_WAIT:.0f} s "
                                                f"(request sent twice)") from None
                repeated = True
                send(last, last_port)
                continue
            if peer[0] != ctx.address or (tid is not None and peer[1] != tid):
                stray += 1        # another host or an old transfer: not ours to answer
                if stray > MAX_STRAY:
                    raise CheckError("protocol", f"TFTP {name}: more than {MAX_STRAY} stray datagrams (flood)")
                continue
            try:
                kind, number, body = wire.parse(datagram)
            except wire.TftpError as e:
                _abort(sock, ctx, peer[1], "illegal packet")
                raise CheckError("protocol", f"TFTP {name}: {e}") from None
            if kind == "error":
                status = {1: "not-found", 2: "denied"}.get(number, "error")
                return Transfer(status, message=f"{number} {body}"[:120])
            tid = peer[1]
            assert isinstance(body, bytes)
            if number != expected:
                stray += 1        # a repeated block (our ACK was late) or junk: no new data
                if stray > MAX_STRAY:
                    _abort(sock, ctx, tid, "too many repeated blocks")
                    raise CheckError("protocol", f"TFTP {name}: more than {MAX_STRAY} out-of-order blocks")
                continue
            content += body
            if len(content) > max_bytes:
                _abort(sock, ctx, tid, "size limit")
                raise CheckError("protocol", f"TFTP {name}: more than {max_bytes} bytes, not a device "
                                             f"configuration (or a transfer that never ends); aborted")
            last, last_port, repeated = wire.ack(number), tid, False
            send(last, last_port)
            if len(body) < wire.BLOCK:
                return Transfer("found", size=len(content), content=content)
            expected = (expected + 1) & 0xFFFF
    except OSError as e:
        raise CheckError("connectivity", f"TFTP {name}: {e.strerror or e}") from None
    finally:
        sock.close()


def _abort(sock: socket.socket, ctx: CheckContext, port: int | None, why: str) -> None:
    """Tell the server we stop (ERROR 0), so it does not keep retransmitting to us."""
    if port is None:
        return
    try:
        ctx.allow()
        sock.sendto(wire.error(0, f"transfer aborted: {why}"), (ctx.address, port))
    except (OSError, CheckError):
        pass


def survey(ctx: CheckContext) -> dict[str, Any]:
    names, patterns, max_bytes = table(ctx)
    found: list[dict[str, Any]] = []
    counts = {"not-found": 0, "denied": 0, "error": 0}
    errors: list[str] = []
    for name in names:
        t = fetch(ctx, name, max_bytes)
        if t.status == "found":
            size, kinds = t.size, credential_kinds(t.content, patterns)
            del t                                   # the file's content goes no further than this line
            found.append({"name": name, "size": size, "credentials": bool(kinds), "credential_kinds": kinds})
            continue
        counts[t.status] += 1
        if t.status == "error" and len(errors) < 3:
            errors.append(f"{name}: {t.message}")
    return {"tried": len(names), "found": found, "not_found": counts["not-found"], "denied": counts["denied"],
            "other_errors": counts["error"], "error_messages": errors}


def run(ctx: CheckContext) -> list[Observation]:
    return [ctx.observation("tftp", survey(ctx))]
