"""Read a server's host key of one type: start a key exchange restricted to that host-key algorithm and take
K_S from the server's reply (RFC 4253 8, RFC 5656 4, RFC 8731, RFC 4419). We never finish the exchange (no
NEWKEYS), so the signature is not needed; the key blob alone gives type, size and fingerprint, exactly as
`ssh-keyscan` and ssh-audit's hostkeytest.py obtain it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paramiko.kex_group14 import KexGroup14SHA256
from paramiko.kex_group16 import KexGroup16SHA512

from checks.ssh._wire import Buf, Reader, WireError, kexinit_payload, next_payload, packet, s_mpint, s_string

# RFC 2409 6.2, Oakley group 2 (1024-bit): only old servers still offer diffie-hellman-group1-sha1 alone.
GROUP1_P = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3"
    "cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5a"
    "e9f24117c4b1fe649286651ece65381ffffffffffffffff", 16)
GROUPS = {
    "diffie-hellman-group1-sha1": GROUP1_P,
    "diffie-hellman-group14-sha1": KexGroup14SHA256.P,
    "diffie-hellman-group14-sha256": KexGroup14SHA256.P,
    "diffie-hellman-group16-sha512": KexGroup16SHA512.P,
}
CURVES = {"ecdh-sha2-nistp256": ec.SECP256R1, "ecdh-sha2-nistp384": ec.SECP384R1,
          "ecdh-sha2-nistp521": ec.SECP521R1}
GEX = ("diffie-hellman-group-exchange-sha256", "diffie-hellman-group-exchange-sha1")
# Our preference: cheapest first. Hybrid post-quantum kex (sntrup761, mlkem768) is not implemented; every
# server offering one also offers curve25519 in practice.
SUPPORTED_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org", *CURVES, "diffie-hellman-group14-sha256",
                 "diffie-hellman-group14-sha1", *GEX, "diffie-hellman-group16-sha512", "diffie-hellman-group1-sha1")
MSG_KEX_INIT, MSG_KEX_REPLY = 30, 31
MSG_GEX_GROUP, MSG_GEX_INIT, MSG_GEX_REPLY, MSG_GEX_REQUEST = 31, 32, 33, 34
GEX_MIN, GEX_N, GEX_MAX = 2048, 2048, 8192

# Host-key algorithms that share one key: asking for one of them returns the key of that type.
KEY_TYPE = {"ssh-rsa": "ssh-rsa", "rsa-sha2-256": "ssh-rsa", "rsa-sha2-512": "ssh-rsa"}


def key_type_of(algorithm: str) -> str | None:
    """The key type a host-key algorithm signs with; None for certificates (their key is the plain type's)."""
    if "-cert-" in algorithm:
        return None
    return KEY_TYPE.get(algorithm, algorithm)


def choose_kex(server_kex: list[str]) -> str | None:
    return next((k for k in SUPPORTED_KEX if k in server_kex), None)


def describe_blob(blob: bytes) -> dict:
    """{type, bits, fingerprint_sha256} of a public-key blob (RFC 4253 6.6, RFC 5656 3.1, RFC 8709 4)."""
    b = Buf(blob)
    ktype = b.string(64).decode("ascii", errors="replace")
    bits: int | None = None
    if ktype == "ssh-rsa":
        b.mpint()                       # e
        bits = b.mpint().bit_length()   # n
    elif ktype == "ssh-dss":
        bits = b.mpint().bit_length()   # p
    elif ktype.startswith("ecdsa-sha2-") or ktype.startswith("sk-ecdsa-sha2-"):
        curve = b.string(64).decode("ascii", errors="replace")
        bits = {"nistp256": 256, "nistp384": 384, "nistp521": 521}.get(curve)
    elif ktype in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        bits = 256
    elif ktype == "ssh-ed448":
        bits = 448
    fp = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return {"type": ktype, "bits": bits, "fingerprint_sha256": f"SHA256:{fp}"}


def fetch(sock_reader: Reader, send, kex: str, host_key_alg: str, ciphers: list[str], macs: list[str]) -> bytes:
    """Run our half of `kex` on a connection whose banner and server KEXINIT were already read; return K_S."""
    send(packet(kexinit_payload([kex], [host_key_alg], ciphers, macs)))
    if kex in GEX:
        send(packet(bytes([MSG_GEX_REQUEST]) + GEX_MIN.to_bytes(4, "big") + GEX_N.to_bytes(4, "big")
                    + GEX_MAX.to_bytes(4, "big")))
        g = Buf(next_payload(sock_reader, {MSG_GEX_GROUP})[1:])
        p, gen = g.mpint(), g.mpint()
        if p.bit_length() > 16384 or not 1 < gen < p:
            raise WireError("protocol", "unusable group-exchange group")
        x = secrets.randbelow(2**256) + 2
        send(packet(bytes([MSG_GEX_INIT]) + s_mpint(pow(gen, x, p))))
        reply = next_payload(sock_reader, {MSG_GEX_REPLY})
    else:
        if kex.startswith("curve25519"):
            q = x25519.X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            init = s_string(q)
        elif kex in CURVES:
            pub = ec.generate_private_key(CURVES[kex]()).public_key()
            init = s_string(pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
        elif kex in GROUPS:
            x = secrets.randbelow(2**256) + 2
            init = s_mpint(pow(2, x, GROUPS[kex]))
        else:
            raise WireError("unsupported", f"key exchange {kex} not implemented")
        send(packet(bytes([MSG_KEX_INIT]) + init))
        reply = next_payload(sock_reader, {MSG_KEX_REPLY})
    return Buf(reply[1:]).string()
