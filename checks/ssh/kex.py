"""ssh.kex: an SSH server's identification, algorithm lists (from its KEXINIT, in the server's order) and
host keys (type, size, SHA-256 fingerprint), read from the handshake itself. No login is attempted.

Facts only. Which algorithm is weak is baselines/knowledge/ssh_algorithms.yaml; the rules crypto.ssh.* judge.
Observation key `algorithms` (public contract, read by other tools through `tcmscan observations`):
    banner, protocol ("2.0" | "1.99" | "1.5"), software,
    kex, host_key, ciphers, macs, compression        -- client-to-server lists, server's order
    ciphers_s2c, macs_s2c, compression_s2c           -- the other direction (identical on OpenSSH)
    host_keys: [{type, bits, fingerprint_sha256}]    -- one per key type the server offers (+ error if unread)
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

from checks.ssh import _hostkey as hostkey
from checks.ssh._wire import (
    CLIENT_ID,
    MSG_KEXINIT,
    KexInit,
    Reader,
    WireError,
    next_payload,
    parse_kexinit,
    read_banner,
)
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="ssh.kex",
    version="1.0",
    title_zh="SSH协议版本与密码算法",
    title_en="SSH protocol version, algorithms and host keys",
    granularity="service",
    services=("ssh",),
    ports=(22,),
    timeout=20.0,
    description="Reads the SSH identification line and the server's KEXINIT, then one key exchange per host-key "
                "type to read each host key. No authentication.",
)
HANDSHAKE_BUDGET = 8.0   # seconds for banner + KEXINIT on one connection (a LAN server answers in ms)
HOSTKEY_BUDGET = 6.0     # seconds for one host-key exchange (server does one DH/ECDH operation)


def _connect(ctx: CheckContext) -> tuple[socket.socket, Reader]:
    sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
    try:
        sock.sendall(CLIENT_ID + b"\r\n")   # sent at once: the server's banner and ours cross on the wire
    except OSError as e:
        sock.close()
        raise CheckError("connectivity", f"send failed: {e.strerror or e}") from None
    return sock, Reader(sock, time.monotonic() + min(HANDSHAKE_BUDGET, ctx.remaining()))


def _read_kexinit(r: Reader) -> KexInit:
    return parse_kexinit(next_payload(r, {MSG_KEXINIT}))


def _hostkey(ctx: CheckContext, kexinit: KexInit, kex: str, alg: str,
             conn: tuple[socket.socket, Reader] | None = None) -> dict:
    """One host key, on `conn` (banner and KEXINIT already read) or on a new connection."""
    try:
        sock, r = conn if conn else _connect(ctx)
    except CheckError as e:
        return {"type": hostkey.key_type_of(alg), "bits": None, "fingerprint_sha256": None, "error": str(e)}
    try:
        r.deadline = time.monotonic() + min(HOSTKEY_BUDGET, ctx.remaining())
        if conn is None:
            read_banner(r)
            _read_kexinit(r)
        blob = hostkey.fetch(r, sock.sendall, kex, alg, kexinit.ciphers_c2s[:1], kexinit.macs_c2s[:1])
        return hostkey.describe_blob(blob)
    except (WireError, CheckError, OSError) as e:
        detail = getattr(e, "detail", None) or str(e)
        return {"type": hostkey.key_type_of(alg), "bits": None, "fingerprint_sha256": None,
                "error": f"{alg} via {kex}: {detail}"[:200]}
    finally:
        sock.close()


def run(ctx: CheckContext) -> list[Observation]:
    sock, r = _connect(ctx)
    try:
        try:
            banner = read_banner(r)
            protocol = banner.protocol
            kexinit = _read_kexinit(r) if protocol in ("2.0", "1.99") else None
        except WireError as e:
            raise CheckError(e.reason, e.detail) from None
        data: dict = {
            "banner": banner.raw, "protocol": protocol, "software": banner.software,
            "kex": [], "host_key": [], "ciphers": [], "macs": [], "compression": [],
            "ciphers_s2c": [], "macs_s2c": [], "compression_s2c": [], "host_keys": [],
        }
        if kexinit is None:
            if not protocol.startswith("1."):
                raise CheckError("protocol", f"unknown SSH protocol version {protocol!r} in {banner.raw[:80]!r}")
            sock.close()   # SSH-1 only: no KEXINIT to read; the version itself is the fact
            return [ctx.observation("algorithms", data)]
        data.update(kex=kexinit.kex, host_key=kexinit.host_key, ciphers=kexinit.ciphers_c2s,
                    macs=kexinit.macs_c2s, compression=kexinit.compression_c2s,
                    ciphers_s2c=kexinit.ciphers_s2c, macs_s2c=kexinit.macs_s2c,
                    compression_s2c=kexinit.compression_s2c)
    except BaseException:
        sock.close()
        raise

    # One exchange per key type (rsa-sha2-512, rsa-sha2-256 and ssh-rsa share one RSA key).
    wanted: dict[str, str] = {}
    for alg in kexinit.host_key:
        t = hostkey.key_type_of(alg)
        if t is not None and t not in wanted:
            wanted[t] = alg
    kex = hostkey.choose_kex(kexinit.kex)
    if not wanted or kex is None:
        sock.close()
        if wanted:
            data["host_keys"] = [{"type": t, "bits": None, "fingerprint_sha256": None,
                                  "error": "no key exchange in common with the server"} for t in wanted]
        return [ctx.observation("algorithms", data)]
    algs = list(wanted.values())
    first = _hostkey(ctx, kexinit, kex, algs[0], conn=(sock, r))   # reuses the open connection
    rest: list[dict] = []
    if algs[1:]:
        if ctx.safe_mode:   # fragile devices: one connection at a time
            rest = [_hostkey(ctx, kexinit, kex, a) for a in algs[1:]]
        else:
            with ThreadPoolExecutor(max_workers=min(4, len(algs) - 1)) as pool:
                rest = list(pool.map(lambda a: _hostkey(ctx, kexinit, kex, a), algs[1:]))
    data["host_keys"] = [first, *rest]
    return [ctx.observation("algorithms", data)]
