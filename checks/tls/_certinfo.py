"""What the server's certificate chain says, parsed with `cryptography`: facts only (the rules judge).

Trust is decided by our own path building (signature by signature, against the system store and an extra CA
bundle) rather than by an OpenSSL verify, so that "untrusted" and "expired" stay separate facts: an expired
certificate from a trusted CA is `chain_trusted: true`, `not_after` in the past.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import ssl
import warnings
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from scanner.sdk import knowledge

MAX_CHAIN_DEPTH = 8
MAX_NAME_CHARS = 1024     # a subject/issuer as stored (X.509 bounds a common name at 64; a hostile one had 8000)
MAX_SAN_ITEMS = 100

# What cryptography says of a hostile certificate while parsing it (a negative serial, a name attribute over its
# X.509 length) went to the scan's stderr, once per process. The certificate's facts say it already (serial,
# subject); the warnings say nothing more.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive", category=UserWarning)
warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)


@functools.cache
def _sm_oids() -> dict[str, str]:
    return dict(knowledge()["tls_shangmi"]["oids"])


@functools.cache
def _store(extra: str = "") -> tuple[x509.Certificate, ...]:
    """Trust anchors: the system bundle plus `extra` (a PEM file), read once per process."""
    paths = []
    vp = ssl.get_default_verify_paths()
    for p in (vp.cafile, vp.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if p and Path(p).is_file():
            paths.append(Path(p))
            break
    if extra:
        paths.append(Path(extra))
    certs: list[x509.Certificate] = []
    for p in paths:
        try:
            with warnings.catch_warnings():   # some system anchors have non-positive serials: still anchors
                warnings.simplefilter("ignore")
                certs.extend(x509.load_pem_x509_certificates(p.read_bytes()))
        except (OSError, ValueError):
            continue
    return tuple(certs)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Does `issuer`'s key verify `cert`'s signature? By hand, because cryptography's
    verify_directly_issued_by refuses SHA-1 and MD5 signatures, exactly the old certificates we must judge."""
    if cert.issuer != issuer.subject:
        return False
    try:
        key = issuer.public_key()
        params = cert.signature_algorithm_parameters
        h = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, params, h)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(h))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, h)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
        return True
    except Exception:   # InvalidSignature, unsupported algorithm (SM2), malformed: not a proven link
        return False


def chain_trust(chain: list[x509.Certificate], extra_ca: str = "") -> tuple[bool, str]:
    """(trusted, why not): walk leaf -> issuer through the presented chain until a trust anchor signs."""
    anchors = _store(extra_ca)
    anchor_fps = {a.fingerprint(_SHA256) for a in anchors}
    cur = chain[0]
    pool = list(chain[1:])
    for _ in range(MAX_CHAIN_DEPTH):
        if cur.fingerprint(_SHA256) in anchor_fps:
            return True, ""
        if any(_issued_by(cur, a) for a in anchors):
            return True, ""
        nxt = next((c for c in pool if _issued_by(cur, c)), None)
        if nxt is None:
            if _issued_by(cur, cur):
                return False, "self-signed certificate not in the trust store"
            return False, f"issuer not found: {cur.issuer.rfc4514_string()}"
        pool.remove(nxt)
        cur = nxt
    return False, "chain too long"


_SHA256 = hashes.SHA256()


def _key(cert: x509.Certificate, sm_oids: dict[str, str]) -> tuple[str, int, str]:
    """(key type, bits, curve); SM2 keys (which cryptography cannot load) are recognised by their curve OID."""
    try:
        key = cert.public_key()
    except Exception:
        if _der_oid(sm_oids["sm2_curve"]) in cert.tbs_certificate_bytes:
            return "SM2", 256, "sm2p256v1"
        return "unknown", 0, ""
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, ""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size, key.curve.name
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, ""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, ""
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, ""
    return type(key).__name__, 0, ""


def _der_oid(dotted: str) -> bytes:
    """DER encoding of an OBJECT IDENTIFIER (to find the SM2 curve inside a SubjectPublicKeyInfo)."""
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body.extend(reversed(chunk))
    return bytes([6, len(body)]) + bytes(body)


def _san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return [], []
    except Exception:
        return [], []
    dns = [str(n)[:255] for n in ext.get_values_for_type(x509.DNSName)]
    ips = [str(n) for n in ext.get_values_for_type(x509.IPAddress)]
    return dns, ips


def _dns_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def hostname_match(cert: x509.Certificate, names: list[str]) -> bool:
    """RFC 6125: SAN DNS names (one-label wildcard) and SAN IPs; the subject CN only when there is no SAN."""
    dns, ips = _san(cert)
    if not dns and not ips:
        dns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]
    for n in names:
        if not n:
            continue
        try:
            ip = ipaddress.ip_address(n)
        except ValueError:
            if any(_dns_match(p, n) for p in dns):
                return True
            continue
        if str(ip) in ips:
            return True
    return False


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sig_name(cert: x509.Certificate, sm_oids: dict[str, str]) -> tuple[str, str]:
    """(signature algorithm name as OpenSSL prints it, hash name)."""
    oid = cert.signature_algorithm_oid
    if oid.dotted_string == sm_oids["sm2_with_sm3"]:
        return "SM2-with-SM3", "sm3"
    name = getattr(oid, "_name", "") or oid.dotted_string
    try:
        h = cert.signature_hash_algorithm
        hname = h.name if h is not None else ""
    except Exception:
        hname = ""
    return name, hname


def _capped(text: str) -> str:
    return text if len(text) <= MAX_NAME_CHARS else text[:MAX_NAME_CHARS] + f"... ({len(text)} characters)"


def analyse(chain_der: list[bytes], *, names: list[str], extra_ca: str = "",
            now: dt.datetime | None = None) -> dict[str, Any]:
    """Facts about the leaf certificate and its chain. Raises ValueError when the leaf is not X.509."""
    now = now or dt.datetime.now(dt.UTC)
    sm_oids = _sm_oids()
    chain = []
    for der in chain_der:
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except (ValueError, x509.InvalidVersion) as e:     # a version field past v3 is no ValueError
            if not chain:
                raise ValueError(str(e)) from None
            break   # an undecodable intermediate: keep what we have, trust will say "issuer not found"
    leaf = chain[0]
    key_type, bits, curve = _key(leaf, sm_oids)
    sig, sig_hash = _sig_name(leaf, sm_oids)
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    trusted, why = chain_trust(chain, extra_ca)
    dns, ips = _san(leaf)
    sm2 = key_type == "SM2" or sig == "SM2-with-SM3"
    return {
        "subject": _capped(leaf.subject.rfc4514_string()),
        "issuer": _capped(leaf.issuer.rfc4514_string()),
        "serial": format(leaf.serial_number, "x"),
        "sha256": hashlib.sha256(chain_der[0]).hexdigest(),
        "key_type": key_type,
        "key_bits": bits,
        "curve": curve,
        "signature_algorithm": sig,
        "signature_hash": sig_hash,
        "not_before": _iso(nb),
        "not_after": _iso(na),
        "days_to_expiry": round((na - now).total_seconds() / 86400, 1),
        "expired": now > na,
        "not_yet_valid": now < nb,
        "self_signed": _issued_by(leaf, leaf) or (leaf.issuer == leaf.subject and key_type == "SM2"),
        "chain_length": len(chain),
        "chain_trusted": trusted,
        "chain_error": why,
        "san_dns": dns[:MAX_SAN_ITEMS],
        "san_ip": ips[:MAX_SAN_ITEMS],
        "hostname_match": hostname_match(leaf, names),
        "names_checked": [n for n in names if n],
        "sm2": sm2,
    }
