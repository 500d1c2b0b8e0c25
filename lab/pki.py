"""Keys and certificates for the lab, made once and cached under the data dir.

- the scanner's SSH key (ed25519, OpenSSH format) and the hardened host's backup key;
- the lab CA (RSA 2048, SHA-256), which signs the hardened and portal certificates;
- HIS: 1024-bit RSA, self-signed, SHA-1 signature (planted);
- portal: 2048-bit, lab-CA-signed, validity entirely in the past (planted: expired);
- hardened: 2048-bit, lab-CA-signed, SAN DNS:hardened + IP:10.77.0.50, valid now.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
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
