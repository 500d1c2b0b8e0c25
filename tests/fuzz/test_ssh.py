"""ssh.kex: the identification line, packets, KEXINIT, the host-key exchange and key blobs, from a peer sending
anything: a value or WireError, never anything else."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from checks.ssh import _hostkey as hostkey
from checks.ssh._wire import (
    MSG_KEXINIT,
    Reader,
    WireError,
    kexinit_payload,
    next_payload,
    packet,
    parse_banner_line,
    parse_kexinit,
    read_banner,
    s_mpint,
    s_string,
)
from tests.fuzz import bounded, fuzz, mutated, peer

NAMES = st.lists(st.sampled_from(("curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256",
                                  "diffie-hellman-group-exchange-sha256", "ssh-ed25519", "rsa-sha2-512",
                                  "aes128-ctr", "hmac-sha2-256", "x@y")), min_size=1, max_size=4)
KEXINIT = st.builds(kexinit_payload, NAMES, NAMES, NAMES, NAMES)
BLOBS = st.sampled_from((
    s_string("ssh-ed25519") + s_string(b"\x01" * 32),
    s_string("ssh-rsa") + s_mpint(65537) + s_mpint((1 << 2047) + 12345),
    s_string("ecdsa-sha2-nistp256") + s_string("nistp256") + s_string(b"\x04" + b"\x02" * 64),
    s_string("ssh-dss") + s_mpint((1 << 1023) + 1) + s_mpint(3) + s_mpint(5) + s_mpint(7),
))


@fuzz
@given(st.one_of(st.binary(max_size=400), mutated(st.just(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"))))
def test_identification_line(line: bytes) -> None:
    b = bounded(parse_banner_line, line, allowed=(WireError,))
    assert b is None or b.raw.startswith("SSH-")


@fuzz
@given(st.one_of(st.binary(max_size=2000), mutated(KEXINIT)))
def test_kexinit(payload: bytes) -> None:
    k = bounded(parse_kexinit, payload, allowed=(WireError,))
    assert k is None or all(isinstance(n, str) for n in k.kex)


@fuzz
@given(st.one_of(st.binary(max_size=400), mutated(BLOBS)))
def test_host_key_blob(blob: bytes) -> None:
    d = bounded(hostkey.describe_blob, blob, allowed=(WireError,))
    assert d is None or d["fingerprint_sha256"].startswith("SHA256:")


def _server(kexinit: bytes) -> bytes:
    return b"SSH-2.0-OpenSSH_9.2\r\n" + packet(kexinit)


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(st.builds(_server, KEXINIT))))
def test_banner_then_kexinit_from_any_peer(sent: bytes) -> None:
    def read(sock) -> object:
        r = Reader(sock, time.monotonic() + 2.0)
        read_banner(r)
        return parse_kexinit(next_payload(r, {MSG_KEXINIT}))

    with peer(sent) as sock:
        bounded(read, sock, allowed=(WireError,))


# The server's half of each exchange we run: a KEX reply (K_S, f or Q_S, signature) or a GEX group.
REPLY = st.builds(lambda blob: packet(bytes([31]) + s_string(blob) + s_string(b"\x05" * 32) + s_string(b"sig")),
                  BLOBS)
GEX_GROUP = st.builds(lambda p, g: packet(bytes([31]) + s_mpint(p) + s_mpint(g)),
                      st.sampled_from(((1 << 2047) + 1, 23, 0, (1 << 20000) + 1)), st.sampled_from((2, 5, 0, 1)))


@fuzz
@given(st.sampled_from(("curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256",
                        "diffie-hellman-group-exchange-sha256", "sntrup761x25519-sha512@openssh.com")),
       st.one_of(st.binary(max_size=2000), mutated(REPLY), mutated(st.tuples(GEX_GROUP, REPLY).map(b"".join))))
def test_host_key_exchange_with_any_peer(kex: str, sent: bytes) -> None:
    with peer(sent) as sock:
        blob = bounded(hostkey.fetch, Reader(sock, time.monotonic() + 2.0), sock.sendall, kex, "ssh-ed25519",
                       ["aes128-ctr"], ["hmac-sha2-256"], allowed=(WireError,))
    assert blob is None or isinstance(blob, bytes)
