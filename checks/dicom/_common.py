"""pynetdicom behind the check context: every DICOM byte goes through `CheckContext`.

pynetdicom opens its own socket and reads whatever PDU length a peer announces (a 100 MB PDU would be read
into memory, a peer dripping one byte per second would hold the thread). So the AE used by our checks makes
its association socket with `ctx.connect` (scope, safe-mode pacing, device health) and reads through a
guard that refuses oversized PDUs and stops at the attempt's deadline. Nothing here ever stores, moves,
gets or sets: the only services proposed are Verification and Patient Root C-FIND.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import AddressInformation, AssociationSocket

from scanner.sdk import Asset, CheckContext, CheckError, Service
from scanner.sdk.probes import RJ_REASONS, ProbeError, parse_pdu, random_ae

DICOM_PORTS = (104, 11112, 4242)        # plaintext DICOM; 2761/2762 are DICOM-TLS (tls.* checks) unless a probe saw
MAX_PDU_IN = 1 << 20                    # we announce 16 KiB; a peer announcing more than 1 MiB is refused unread
MAX_BYTES_IN = 4 << 20                  # per association: one A-ASSOCIATE-AC, one C-ECHO/C-FIND answer, release
PDU_SECONDS = 15.0                      # one read of pynetdicom's (a PDU header, or a PDU body) must end by then
OUR_MAX_PDU = 16384

# PHI never reaches a log: pynetdicom logs identifiers at debug level, and its error logs are noise to us.
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


def applies(asset: Asset, service: Service | None) -> bool:
    """Plaintext DICOM only: a port named dicom-tls (2761/2762) belongs to the TLS checks."""
    return service is not None and service.name not in ("dicom-tls",) and service.tunnel != "ssl"


class _GuardedSocket(AssociationSocket):
    """An AssociationSocket that connects with ctx.connect and reads with limits and a deadline."""

    def __init__(self, assoc: Association, ctx: CheckContext, port: int) -> None:
        self._ctx = ctx
        self._port = port
        self.failure: CheckError | None = None
        self.received = 0
        self.sent_at: float | None = None
        self.first_answer: float | None = None
        self.first_pdu = bytearray()     # the raw A-ASSOCIATE answer, validated by our own parser
        self._reads = 0
        super().__init__(assoc, address=AddressInformation("0.0.0.0", 0))

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        # A placeholder pynetdicom's constructor wants; never bound or connected, replaced in connect().
        self._is_connected = False
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, primitive: Any) -> None:
        try:
            sock = self._ctx.connect(self._port, timeout=min(10.0, self._ctx.remaining()))
        except CheckError as e:
            self.failure = e
            primitive.result = "Evt17"
            self.provider_queue.put(primitive)
            self._ready.set()
            return
        placeholder, self.socket = self.socket, sock
        if placeholder is not None:
            placeholder.close()
        self._is_connected = True
        self.assoc.requestor.address_info = AddressInformation.from_tuple(sock.getsockname())
        evt.trigger(self.assoc, evt.EVT_CONN_OPEN, {"address": primitive.address_info.as_tuple})
        primitive.result = "Evt2"
        self.provider_queue.put(primitive)
        self._ready.set()

    def _fail(self, reason: str, detail: str) -> bytearray:
        if self.failure is None:
            self.failure = CheckError(reason, detail)
        return bytearray()      # pynetdicom reads a short PDU as "connection closed" and aborts

    def recv(self, nr_bytes: int) -> bytearray:
        if nr_bytes > MAX_PDU_IN + 6:
            return self._fail("protocol", f"peer announced a {nr_bytes}-byte PDU (limit {MAX_PDU_IN}): refused unread")
        if self.received + nr_bytes > MAX_BYTES_IN:
            return self._fail("protocol", f"peer sent more than {MAX_BYTES_IN} bytes in one association")
        out = bytearray()
        sock = self.socket
        # a peer dripping a byte a second would otherwise hold the read until the attempt's whole budget is spent
        deadline = min(self._ctx.deadline, time.monotonic() + PDU_SECONDS)
        unfinished = f"DICOM peer did not finish its PDU within {max(0.0, deadline - time.monotonic()):.0f} s"
        while len(out) < nr_bytes and sock is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                self._ctx.note_silence("DICOM peer stopped answering mid-PDU")
                return self._fail("timeout", unfinished)
            sock.settimeout(min(left, 10.0))
            try:
                chunk = sock.recv(min(65536, nr_bytes - len(out)))
            except TimeoutError:
                self._ctx.note_silence("DICOM peer stopped answering")
                if out:
                    return self._fail("timeout", unfinished)
                return self._fail("timeout", "DICOM peer stopped answering")
            except OSError as e:
                return self._fail("connectivity", f"DICOM connection failed: {e.strerror or e}")
            if not chunk:
                break
            if self.first_answer is None and self.sent_at is not None:
                self.first_answer = time.monotonic() - self.sent_at
                self._ctx.note_response(self.first_answer, "dicom")
            out += chunk
        self.received += len(out)
        if self._reads < 2:               # pynetdicom reads a PDU as recv(6) then recv(length)
            self.first_pdu += out
            self._reads += 1
        return out

    def send(self, bytestream: bytes) -> None:
        if self.sent_at is None:
            self.sent_at = time.monotonic()
        super().send(bytestream)       # the socket is a PacedSocket on fragile devices


class GuardedAE(AE):
    """An AE whose associations use _GuardedSocket; timeouts follow the attempt's budget."""

    def __init__(self, ctx: CheckContext, port: int, calling_ae: str) -> None:
        super().__init__(ae_title=calling_ae)
        self._tcm_ctx = ctx
        self._tcm_port = port
        self.last_socket: _GuardedSocket | None = None
        budget = max(1.0, min(15.0, ctx.remaining()))
        self.acse_timeout = self.dimse_timeout = self.network_timeout = budget
        self.connection_timeout = min(10.0, budget)
        self.maximum_pdu_size = OUR_MAX_PDU

    def _create_socket(self, assoc: Association, address: AddressInformation, tls_args: Any) -> AssociationSocket:
        self.last_socket = _GuardedSocket(assoc, self._tcm_ctx, self._tcm_port)
        return self.last_socket


@dataclass
class Outcome:
    """What one association attempt gave: facts, never the peer's data."""

    called_ae: str
    calling_ae: str
    result: str                      # accepted | rejected | aborted
    assoc: Association | None = None
    established: bool = False        # accepted AND a proposed presentation context accepted
    reject: dict[str, Any] | None = None
    acceptor: dict[str, Any] = field(default_factory=dict)
    accepted_contexts: list[str] = field(default_factory=list)


def open_association(ctx: CheckContext, contexts: list[str], called_ae: str, calling_ae: str | None = None
                     ) -> Outcome:
    """One association (random calling AE unless given). Raises CheckError when we cannot tell anything."""
    port = ctx.port
    assert port is not None
    calling = calling_ae or random_ae("TCMSCAN")
    ae = GuardedAE(ctx, port, calling)
    for uid in contexts:
        ae.add_requested_context(uid)
    ctx.allow()     # pynetdicom's thread and the peer's host: same checks as any connection
    assoc = ae.associate(ctx.address, port, ae_title=called_ae, max_pdu=OUR_MAX_PDU)
    sock = ae.last_socket
    out = Outcome(called_ae=called_ae, calling_ae=calling, result="aborted", assoc=assoc)
    prim = assoc.acceptor.primitive
    if prim is not None and prim.result == 0:
        try:
            raw = parse_pdu(bytes(sock.first_pdu)) if sock is not None else None
        except ProbeError as e:
            finish(assoc)
            raise CheckError("protocol", f"malformed A-ASSOCIATE-AC: {e.detail}") from None
        if raw is None or raw.type != 2:
            finish(assoc)
            raise CheckError("protocol", "A-ASSOCIATE answer is not an A-ASSOCIATE-AC")
        out.result = "accepted"      # A-ASSOCIATE-AC, even when no proposed context was accepted
        out.established = bool(assoc.is_established)
    elif assoc.is_rejected and prim is not None:
        out.result = "rejected"
        out.reject = {"result": int(prim.result or 0), "source": int(prim.result_source or 0),
                      "reason": int(prim.diagnostic or 0),
                      "meaning": RJ_REASONS.get((int(prim.result_source or 0), int(prim.diagnostic or 0)), "unknown")}
    elif sock is not None and sock.failure is not None:
        finish(assoc)
        raise sock.failure
    elif prim is None and sock is not None and sock.received == 0:
        finish(assoc)
        ctx.note_silence("no answer to A-ASSOCIATE-RQ")
        raise CheckError("timeout", f"no answer to A-ASSOCIATE-RQ within {ae.acse_timeout:.0f} s")
    elif prim is None:
        finish(assoc)
        why = "aborted" if assoc.is_aborted else "closed the connection or sent a malformed PDU"
        raise CheckError("protocol", f"no usable A-ASSOCIATE answer: the peer {why}")
    if prim is not None and prim.result == 0:
        acc = assoc.acceptor
        out.acceptor = {
            "ae_title": str(prim.called_ae_title or "").strip(),
            "implementation_class_uid": str(acc.implementation_class_uid or "")[:64],
            "implementation_version_name": str(acc.implementation_version_name or "")[:16],
            "max_pdu": int(acc.maximum_length or 0),
        }
        out.accepted_contexts = sorted(str(c.abstract_syntax) for c in assoc.accepted_contexts)
    return out


def finish(assoc: Association | None, release: bool = True) -> None:
    """Release (or abort) and wait for pynetdicom's thread, so the next connection starts after this one."""
    if assoc is None:
        return
    try:
        if assoc.is_established:
            if release:
                assoc.release()
            else:
                assoc.abort()
    finally:
        if assoc.is_alive():
            assoc.join(timeout=5)
        if assoc.is_alive():
            assoc.abort()
            assoc.join(timeout=2)
        sock = assoc.dul.socket
        if sock is not None and sock.socket is not None:
            sock.close()


def candidate_called_aes(asset: Asset) -> list[str]:
    """Called AE titles we may use besides a random one: only what the hospital's inventory declares."""
    d = asset.extra.get("dicom") or {}
    ae = str(d.get("ae_title") or "").strip() if isinstance(d, dict) else ""
    return [ae] if ae and len(ae) <= 16 else []


def implementation(uid: str, name: str, table: dict[str, Any]) -> dict[str, Any]:
    """Product and version from the implementation class UID / version name (baselines/knowledge)."""
    for impl in table.get("implementations", []):
        for text, pattern in ((uid, impl.get("uid_version")), (name, impl.get("name_version"))):
            if not pattern or not text:
                continue
            m = re.fullmatch(pattern, text)
            if m:
                version = ".".join(g for g in m.groups() if g is not None) if m.groups() else ""
                return {"product": impl["product"], "version": version,
                        "from": "implementation_class_uid" if text is uid else "implementation_version_name"}
        prefix = impl.get("uid_prefix")
        if prefix and uid.startswith(prefix):
            return {"product": impl["product"], "version": "", "from": "implementation_class_uid"}
    return {"product": "", "version": "", "from": ""}
