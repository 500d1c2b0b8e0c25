"""Keys and certificates for the lab, made once and cached under the data dir.

- the scanner's SSH key (ed25519, OpenSSH format) and the hardened host's backup key;
- the lab CA (RSA 2048, SHA-256), which signs the hardened and portal certificates;
- HIS: 1024-bit RSA, self-signed, SHA-1 signature (planted);
- portal: 2048-bit, lab-CA-signed, validity entirely in the past (planted: expired);
- hardened: 2048-bit, lab-CA-signed, SAN DNS:hardened + IP:10.77.0.50, valid now;
- the hostile hosts' absurd 50-certificate chain (absurd_chain, docs/lab.md "Hostile hosts").
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
import subprocess
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.UTC


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def ssh_keypair(path: Path, comment: str) -> str:
    """Create (once) an ed25519 key at `path` (+ .pub); return the public key line."""
    pub = path.with_name(path.name + ".pub")
    if not (path.exists() and pub.exists()):
        key = ed25519.Ed25519PrivateKey.generate()
        _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()), 0o600)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        _write(pub, line + f" {comment}\n".encode())
    return pub.read_text().strip()


def secret_file(path: Path) -> str:
    if not path.exists():
        _write(path, secrets.token_urlsafe(24).encode() + b"\n", 0o600)
    return path.read_text().strip()


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TCM Hospital Lab"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _leaf(cn: str, san: list[x509.GeneralName], key: rsa.RSAPrivateKey, issuer: x509.Name,
          issuer_key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime,
          algorithm: hashes.HashAlgorithm) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return builder.sign(issuer_key, algorithm)


class LabPKI:
    def __init__(self, pki_dir: Path) -> None:
        self.dir = pki_dir
        self.ca_cert_path = pki_dir / "ca.pem"
        self.ca_key_path = pki_dir / "ca.key"

    def ensure_ca(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        if self.ca_cert_path.exists() and self.ca_key_path.exists():
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cert, key
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(UTC)
        name = _name("TCM Hospital Lab Root CA")
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        _write(self.ca_key_path, _pem_key(key), 0o600)
        _write(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def server_cert(self, host: str, address: str, kind: str) -> tuple[Path, Path]:
        """Create (once) the certificate of `kind` for a host; return (cert, key) paths."""
        crt, keyp = self.dir / f"{host}.crt", self.dir / f"{host}.key"
        if crt.exists() and keyp.exists():
            return crt, keyp
        now = dt.datetime.now(UTC)
        san: list[x509.GeneralName] = [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address(address))]
        if kind == "weak-self-signed":
            # cryptography no longer signs with SHA-1, the openssl CLI still does.
            self.dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:1024", "-sha1", "-days", "3650", "-nodes",
                 "-keyout", str(keyp), "-out", str(crt), "-subj", f"/C=CN/O=TCM Hospital Lab/CN={host}",
                 "-addext", f"subjectAltName=DNS:{host},IP:{address}"],
                check=True, capture_output=True,
            )
            os.chmod(keyp, 0o600)
            return crt, keyp
        ca_cert, ca_key = self.ensure_ca()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "expired":
            start, end = dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC)
        elif kind == "ca-signed":
            start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=397)
        else:
            raise ValueError(f"unknown certificate kind {kind!r}")
        cert = _leaf(host, san, key, ca_cert.subject, ca_key, start, end, hashes.SHA256())
        pem = cert.public_bytes(serialization.Encoding.PEM)
        # nginx serves the chain: leaf then the lab CA.
        pem += self.ca_cert_path.read_bytes()
        _write(keyp, _pem_key(key), 0o600)
        _write(crt, pem)
        return crt, keyp


# ---------------------------------------------------------------- the hostile hosts' absurd chain

ABSURD_CHAIN_LENGTH = 50
ABSURD_CN_CHARS = 8000                 # X.509 allows 64 (ub-common-name); parsers must cope with more
ABSURD_MARKUP = "<script>alert('tcmscan')</script><img src=x onerror=alert(1)>"
ABSURD_ESCAPES = "\x1b[2J\x1b[31mhostile\x1b[0m\x07\u202egnp.exe"
NEGATIVE_SERIAL = b"\xfb"              # DER INTEGER -5 (RFC 5280 4.1.2.2: serials are positive)


def _der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = bytes([n]) if n < 0x80 else b"\x81" + bytes([n]) if n < 0x100 else \
        b"\x82" + n.to_bytes(2, "big") if n < 0x10000 else b"\x83" + n.to_bytes(3, "big")
    return bytes([tag]) + length + value


def _der_header(der: bytes, pos: int) -> tuple[int, int]:
    """(header length, value length) of the DER element at `pos`."""
    n = der[pos + 1]
    if n < 0x80:
        return 2, n
    k = n & 0x7F
    return 2 + k, int.from_bytes(der[pos + 2:pos + 2 + k], "big")


def _with_negative_serial(cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The certificate re-signed with serial -5 (cryptography's builder refuses negative serials): its TBS's
    one-byte serial 1 is replaced and the issuer signs the new TBS, so the signature still verifies."""
    der, tbs = cert.public_bytes(serialization.Encoding.DER), cert.tbs_certificate_bytes
    pos = _der_header(tbs, 0)[0]
    pos += sum(_der_header(tbs, pos))          # the explicit [0] version
    assert tbs[pos:pos + 3] == b"\x02\x01\x01", "expected the one-byte serial 1"
    new_tbs = tbs[:pos] + b"\x02\x01" + NEGATIVE_SERIAL + tbs[pos + 3:]
    alg_at = _der_header(der, 0)[0] + len(tbs)
    alg = der[alg_at:alg_at + sum(_der_header(der, alg_at))]
    signature = issuer_key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    return _der_tlv(0x30, new_tbs + alg + _der_tlv(0x03, b"\x00" + signature))


def absurd_chain(directory: Path) -> tuple[Path, Path]:
    """Create (once) the hostile hosts' chain: a leaf and 49 CAs above it (50 certificates), EC P-256.

    The leaf: a common name of ABSURD_CN_CHARS characters, HTML/JS and ANSI/bidi escapes in its subject and SAN,
    serial -5, valid 1950-01-01 .. 9999-12-31.  The CAs: markup and escapes in their names, every tenth with
    serial -5 too.  Returns (chain PEM leaf first, leaf key PEM)."""
    chain_path, key_path = directory / "absurd-chain.pem", directory / "absurd-key.pem"
    if chain_path.exists() and key_path.exists():
        return chain_path, key_path
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(ABSURD_CHAIN_LENGTH)]
    names = [x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ABSURD_MARKUP),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ABSURD_ESCAPES),
        x509.NameAttribute(NameOID.COMMON_NAME, f"hostile CA {i} <b>{i}</b>")]) for i in range(ABSURD_CHAIN_LENGTH)]
    with warnings.catch_warnings():          # "length must be <= 64": the point of it
        warnings.simplefilter("ignore")
        names[0] = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "A" * ABSURD_CN_CHARS, _validate=False),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ABSURD_MARKUP),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ABSURD_ESCAPES)])
    ders: list[bytes] = []
    for i in range(ABSURD_CHAIN_LENGTH):
        issuer = min(i + 1, ABSURD_CHAIN_LENGTH - 1)          # the last one signs itself
        leaf = i == 0
        builder = (x509.CertificateBuilder().subject_name(names[i]).issuer_name(names[issuer])
                   .public_key(keys[i].public_key()).serial_number(1)
                   .not_valid_before(dt.datetime(1950, 1, 1, tzinfo=UTC))
                   .not_valid_after(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
                   .add_extension(x509.BasicConstraints(ca=not leaf, path_length=None), critical=True))
        if leaf:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(f"h{j}.{'<svg onload=alert(1)>'}.example") for j in range(40)]), critical=False)
        cert = builder.sign(keys[issuer], hashes.SHA256())
        if i % 10 == 0:
            ders.append(_with_negative_serial(cert, keys[issuer]))
        else:
            ders.append(cert.public_bytes(serialization.Encoding.DER))
    pem = b"".join(ssl_pem(d) for d in ders)
    _write(key_path, keys[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), 0o600)
    _write(chain_path, pem)
    return chain_path, key_path


def ssl_pem(der: bytes) -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    return b"-----BEGIN CERTIFICATE-----\n" + b"".join(b64[i:i + 64] + b"\n" for i in range(0, len(b64), 64)) \
        + b"-----END CERTIFICATE-----\n"
