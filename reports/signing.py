"""Signed report bundles: an Ed25519 key pair (private key encrypted with a passphrase), an optional SM2/SM3
signature for sites that require ShangMi (GM/T 0003 / GB/T 32918 via the pure-Python `gmssl` package, since
`cryptography` cannot sign with SM2), a manifest of every file and a detached signature over its bytes.

Every file an auditor needs is a standard one, so OpenSSL checks a bundle without tcmscan (docs/reports.md):
the private key is PKCS#8 encrypted with scrypt, the public keys are PEM SubjectPublicKeyInfo, the Ed25519
signature is its raw 64 bytes (RFC 8032) and the SM2 signature is DER SEQUENCE {r, s} (GB/T 35276).

Verification is offline and names each problem: a changed, missing or extra file, a wrong key, an edited
manifest, a corrupt or unchecked signature, a bundle other than the one the auditor pinned.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from reports import der
from scanner.core.errors import UsageError
from scanner.core.scope import Scope

MANIFEST = "manifest.json"
# 2: raw Ed25519 and DER SM2 signature files, the scan's exclusions (1: JSON around a base64 signature)
MANIFEST_FORMAT = "tcmscan-manifest/2"
MANIFEST_FORMAT_1 = "tcmscan-manifest/1"
SIG_ED25519 = "manifest.sig"
SIG_SM2 = "manifest.sm2.sig"
SIG_FILES = {"Ed25519": SIG_ED25519, "SM2-SM3": SIG_SM2}
BUNDLE_META = (MANIFEST, SIG_ED25519, SIG_SM2)
ED_PRIVATE, ED_PUBLIC = "tcmscan-signing-key.pem", "tcmscan-signing-key.pub.pem"
SM2_PRIVATE, SM2_PUBLIC = "tcmscan-sm2-key.json", "tcmscan-sm2-key.pub.pem"
SM2_ID = "1234567812345678"    # the default user id of GB/T 32918 / GM/T 0009 signatures
# One scrypt cost for every key tcmscan encrypts: OWASP's N=2^14, r=8, p=5 (16 MiB; rated as strong as
# N=2^17, r=8, p=1), because OpenSSL 3 refuses scrypt above 32 MiB by default and `openssl pkey` must open the key.
SCRYPT = {"n": 2**14, "r": 8, "p": 5}
# NIST SP 800-63B-4 (2024) asks 15 characters of a password that is the only factor; the key file is one
# stolen copy away from an offline guess, so a new key's passphrase is held to that.
PASSPHRASE_MIN = 15

_PBES2 = der.oid("1.2.840.113549.1.5.13")
_PBKDF2 = der.oid("1.2.840.113549.1.5.12")
_SCRYPT_OID = der.oid("1.3.6.1.4.1.11591.4.11")
_AES256_CBC = der.oid("2.16.840.1.101.3.4.1.42")
# SubjectPublicKeyInfo algorithm of an SM2 key, as OpenSSL 3 and GmSSL write it: id-ecPublicKey, curve SM2
_SM2_SPKI_ALGORITHM = der.oid("1.2.840.10045.2.1") + der.oid("1.2.156.10197.1.301")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:32]


def _scrypt_work(n: int, r: int, p: int) -> int:
    return n * r * p


# -- passphrases ---------------------------------------------------------------------------------------------
def read_passphrase(passphrase_file: str | None, *, confirm: bool = False) -> bytes:
    """--passphrase-file, else $TCMSCAN_KEY_PASSPHRASE, else a prompt (only on a terminal).

    confirm=True is for a new key: asked twice at a prompt and held to PASSPHRASE_MIN characters. An existing
    key opens with the passphrase it was made with (load_signing_key warns when that one is short)."""
    if passphrase_file:
        try:
            text = Path(passphrase_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise UsageError(f"cannot read passphrase file {passphrase_file}: {e.strerror}") from None
    elif os.environ.get("TCMSCAN_KEY_PASSPHRASE"):
        text = os.environ["TCMSCAN_KEY_PASSPHRASE"]
    elif os.isatty(0):
        import getpass

        text = getpass.getpass("key passphrase: ")
        if confirm and getpass.getpass("again: ") != text:
            raise UsageError("the passphrases differ")
    else:
        raise UsageError("no passphrase: use --passphrase-file FILE or set TCMSCAN_KEY_PASSPHRASE")
    if not text:
        raise UsageError("the key passphrase is empty")
    if confirm and len(text) < PASSPHRASE_MIN:
        raise UsageError(f"the key passphrase must have at least {PASSPHRASE_MIN} characters "
                         f"(it has {len(text)})")
    return text.encode("utf-8")


# -- SM2 (gmssl) -----------------------------------------------------------------------------------------------
def _sm2_n() -> int:
    from gmssl import sm2

    return int(sm2.default_ecc_table["n"], 16)


def _sm2(private_hex: str | None, public_hex: str) -> Any:
    from gmssl import sm2

    c = sm2.CryptSM2(private_key=private_hex, public_key="")
    # Set after construction: gmssl's constructor does public_key.lstrip("04") when the hex starts with "04",
    # which eats the x coordinate of one key in 256 (its signatures then never verify).
    c.public_key = public_hex
    return c


def sm2_public_from_private(private_hex: str) -> str:
    from gmssl import sm2

    c = _sm2(private_hex, "")
    return c._kg(int(private_hex, 16), sm2.default_ecc_table["g"])


def sm2_sign(private_hex: str, public_hex: str, data: bytes) -> bytes:
    """r || s, 32 bytes each (sm2_signature_der gives the standard file)."""
    # gmssl's own nonce comes from `random`; a predictable k reveals the key, so draw it from `secrets`.
    k = secrets.randbelow(_sm2_n() - 1) + 1
    sig_hex = _sm2(private_hex, public_hex).sign_with_sm3(data, f"{k:064x}")
    return bytes.fromhex(sig_hex)


def sm2_verify(public_hex: str, data: bytes, signature: bytes) -> bool:
    if len(signature) != 64 or len(public_hex) != 128:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    n = _sm2_n()
    if not (1 <= r < n and 1 <= s < n):     # gmssl does not range-check r and s itself
        return False
    try:
        return bool(_sm2(None, public_hex).verify_with_sm3(signature.hex(), data))
    except (ValueError, ZeroDivisionError, TypeError):
        return False      # gmssl meets the point at infinity on some forged signatures as None: not valid


def sm2_signature_der(raw: bytes) -> bytes:
    """r || s as DER SEQUENCE {r INTEGER, s INTEGER}, what OpenSSL and GmSSL read and write."""
    return der.tlv(der.SEQUENCE, der.integer(int.from_bytes(raw[:32], "big"))
                   + der.integer(int.from_bytes(raw[32:], "big")))


def sm2_signature_raw(signature: bytes) -> bytes:
    """The DER signature as r || s; ValueError unless it is exactly minimal DER of two 256-bit integers."""
    (tr, r), (ts, s) = der.items(der.only(signature, der.SEQUENCE))
    r_int, s_int = der.to_int(tr, r), der.to_int(ts, s)
    if r_int >> 256 or s_int >> 256:
        raise ValueError("r or s longer than 256 bits")
    return r_int.to_bytes(32, "big") + s_int.to_bytes(32, "big")


def sm2_public_pem(public_hex: str) -> bytes:
    """PEM SubjectPublicKeyInfo: id-ecPublicKey with the SM2 curve (1.2.156.10197.1.301), uncompressed point."""
    point = b"\x04" + bytes.fromhex(public_hex)
    spki = der.tlv(der.SEQUENCE, der.tlv(der.SEQUENCE, _SM2_SPKI_ALGORITHM) + der.tlv(der.BIT_STRING, b"\x00" + point))
    return der.pem("PUBLIC KEY", spki)


def _sm2_public_hex(spki: bytes) -> str | None:
    """x || y in hex when `spki` is an SM2 SubjectPublicKeyInfo with an uncompressed point, else None."""
    try:
        (ta, algorithm), (tb, bits) = der.items(der.only(spki, der.SEQUENCE))
    except ValueError:
        return None
    if (ta, algorithm, tb) != (der.SEQUENCE, _SM2_SPKI_ALGORITHM, der.BIT_STRING):
        return None
    if len(bits) != 66 or bits[:2] != b"\x00\x04":
        raise UsageError("the SM2 public key is not an uncompressed point (openssl ... -conv_form uncompressed)")
    return bits[2:].hex()


def _encrypt_secret(secret: bytes, passphrase: bytes) -> dict[str, Any]:
    salt, nonce = os.urandom(16), os.urandom(12)
    key = Scrypt(salt=salt, length=32, **SCRYPT).derive(passphrase)
    return {"kdf": {"name": "scrypt", "salt": base64.b64encode(salt).decode(), **SCRYPT}, "cipher": "AES-256-GCM",
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(AESGCM(key).encrypt(nonce, secret, b"tcmscan-sm2-key")).decode()}


def _decrypt_secret(doc: dict[str, Any], passphrase: bytes, path: Path) -> bytes:
    try:
        kdf = doc["kdf"]
        key = Scrypt(salt=base64.b64decode(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
                     ).derive(passphrase)
        return AESGCM(key).decrypt(base64.b64decode(doc["nonce"]), base64.b64decode(doc["ciphertext"]),
                                   b"tcmscan-sm2-key")
    except InvalidTag:
        raise UsageError(f"cannot decrypt {path}: wrong passphrase") from None
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path} is not a tcmscan SM2 key file ({e})") from None


# -- Ed25519 private key: PKCS#8, PBES2 with scrypt ------------------------------------------------------------
def _pkcs8_scrypt(key: Ed25519PrivateKey, passphrase: bytes) -> bytes:
    """EncryptedPrivateKeyInfo with PBES2 (scrypt, AES-256-CBC), as `openssl pkcs8 -topk8 -scrypt` writes it.
    `cryptography` writes encrypted PKCS#8 only with PBKDF2 at 2,048 rounds and reads this form itself; writing
    it here rather than through the openssl program keeps the passphrase out of another process."""
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    aes_key = Scrypt(salt=salt, length=32, **SCRYPT).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    scrypt_params = der.tlv(der.OCTET_STRING, salt) + b"".join(der.integer(SCRYPT[k]) for k in ("n", "r", "p"))
    kdf = der.tlv(der.SEQUENCE, _SCRYPT_OID + der.tlv(der.SEQUENCE, scrypt_params))
    cipher = der.tlv(der.SEQUENCE, _AES256_CBC + der.tlv(der.OCTET_STRING, iv))
    algorithm = der.tlv(der.SEQUENCE, _PBES2 + der.tlv(der.SEQUENCE, kdf + cipher))
    return der.pem("ENCRYPTED PRIVATE KEY", der.tlv(der.SEQUENCE, algorithm + der.tlv(der.OCTET_STRING, ciphertext)))


def _pkcs8_protection(pem: bytes) -> tuple[str, bool]:
    """(how an encrypted PKCS#8 key is protected, whether that is as strong as a new key's)."""
    try:
        (_, algorithm), _ = der.items(der.only(der.unpem(pem, "ENCRYPTED PRIVATE KEY") or b"", der.SEQUENCE))
        (to, scheme), (_, params) = der.items(algorithm)
        if der.tlv(to, scheme) != _PBES2:
            return "a scheme other than PBES2", False
        (_, kdf), _ = der.items(params)
        (tk, kdf_oid), (_, kdf_params) = der.items(kdf)
        values = der.items(kdf_params)
        if der.tlv(tk, kdf_oid) == _SCRYPT_OID:
            n, r, p = (der.to_int(*v) for v in values[1:4])
            return f"scrypt N={n}, r={r}, p={p}", _scrypt_work(n, r, p) >= _scrypt_work(**SCRYPT)
        if der.tlv(tk, kdf_oid) == _PBKDF2:
            return f"PBKDF2 at {der.to_int(*values[1]):,} iterations", False
    except (ValueError, IndexError, TypeError):
        pass
    return "an unrecognised encryption", False


def _warn_weak(path: str, reasons: list[str]) -> None:
    if reasons:
        print(f"tcmscan: warning: signing key {path} is weakly protected ({'; '.join(reasons)}): make a new "
              f"key with 'tcmscan keys generate' (scrypt N={SCRYPT['n']}, r={SCRYPT['r']}, p={SCRYPT['p']}, "
              f"a passphrase of {PASSPHRASE_MIN}+ characters)", file=sys.stderr)


# -- keys ---------------------------------------------------------------------------------------------------
def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL never follows a symbolic link (nor overwrites anything); O_NOFOLLOW says so twice.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def generate_keys(out: Path, passphrase: bytes, *, sm2: bool = False) -> list[Path]:
    """Write the key pair(s) into `out` (created 0700): private keys 0600, public keys 0644 (they are handed
    to auditors); never overwrite an existing key."""
    if out.is_symlink():
        raise UsageError(f"{out} is a symbolic link: refusing to write keys through it")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.mkdir(mode=0o700)
    except FileExistsError:
        if not out.is_dir():
            raise UsageError(f"{out} is not a directory") from None
    targets = [out / ED_PRIVATE, out / ED_PUBLIC] + ([out / SM2_PRIVATE, out / SM2_PUBLIC] if sm2 else [])
    for p in targets:
        if p.exists() or p.is_symlink():
            raise UsageError(f"{p} exists: refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(out / ED_PRIVATE, _pkcs8_scrypt(key, passphrase), 0o600)
    _write_new(out / ED_PUBLIC, pub, 0o644)
    if sm2:
        priv = f"{secrets.randbelow(_sm2_n() - 2) + 1:064x}"
        public_hex = sm2_public_from_private(priv)
        doc = {"type": "tcmscan-sm2-private-key", "curve": "sm2p256v1", "public_key": public_hex,
               **_encrypt_secret(priv.encode(), passphrase)}
        _write_new(out / SM2_PRIVATE, json.dumps(doc, indent=2).encode(), 0o600)
        _write_new(out / SM2_PUBLIC, sm2_public_pem(public_hex), 0o644)
    return targets


@dataclass
class SigningKey:
    algorithm: str              # Ed25519 | SM2-SM3
    key_id: str
    private: Any                # Ed25519PrivateKey | (private hex, public hex)

    def sign(self, data: bytes) -> bytes:
        """The signature file's bytes: raw Ed25519 (RFC 8032), DER SEQUENCE {r, s} for SM2."""
        if self.algorithm == "Ed25519":
            return self.private.sign(data)
        return sm2_signature_der(sm2_sign(self.private[0], self.private[1], data))


def load_signing_key(path: str, passphrase: bytes) -> SigningKey:
    """The key, after a one-line warning on stderr when it is protected more weakly than a new key would be
    (a key from before scrypt PKCS#8, or a passphrase under PASSPHRASE_MIN): it still signs."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read signing key {path}: {e.strerror}") from None
    weak = [f"a passphrase under {PASSPHRASE_MIN} characters"] \
        if len(passphrase.decode("utf-8", "replace")) < PASSPHRASE_MIN else []
    if raw.lstrip().startswith(b"{"):
        try:
            doc = json.loads(raw)
        except ValueError:
            raise UsageError(f"{path} is not a key file") from None
        if doc.get("type") != "tcmscan-sm2-private-key":
            raise UsageError(f"{path} is not a tcmscan SM2 private key")
        priv = _decrypt_secret(doc, passphrase, p).decode()
        kdf = doc["kdf"]
        if _scrypt_work(kdf["n"], kdf["r"], kdf["p"]) < _scrypt_work(**SCRYPT):
            weak.insert(0, f"scrypt N={kdf['n']}, r={kdf['r']}, p={kdf['p']}")
        _warn_weak(path, weak)
        public_hex = sm2_public_from_private(priv)
        return SigningKey("SM2-SM3", key_id(bytes.fromhex(public_hex)), (priv, public_hex))
    try:
        key = serialization.load_pem_private_key(raw, password=passphrase)
    except TypeError:
        raise UsageError(f"signing key {path} is not encrypted; tcmscan only signs with an encrypted key") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        msg = "wrong passphrase" if "password" in str(e).lower() or "decrypt" in str(e).lower() else str(e)
        raise UsageError(f"cannot load signing key {path}: {msg}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {path} is not an Ed25519 key")
    how, strong = _pkcs8_protection(raw)
    _warn_weak(path, ([] if strong else [how]) + weak)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey("Ed25519", key_id(pub), key)


@dataclass
class PublicKey:
    algorithm: str
    key_id: str
    key: Any                    # Ed25519PublicKey | public hex
    path: str

    def verify(self, data: bytes, signature: bytes) -> bool:
        """`signature` as the algorithm defines it: 64 raw bytes for Ed25519, r || s for SM2."""
        if self.algorithm == "Ed25519":
            try:
                self.key.verify(signature, data)
                return True
            except InvalidSignature:
                return False
        return sm2_verify(self.key, data, signature)


def load_public_key(path: str) -> PublicKey:
    """An Ed25519 or SM2 PEM public key, or an SM2 .pub.json from tcmscan before manifest format 2."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read public key {path}: {e.strerror}") from None
    if raw.lstrip().startswith(b"{"):
        try:
            doc = json.loads(raw)
            public_hex = str(doc["public_key"])
            bytes.fromhex(public_hex)
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{path} is not a tcmscan SM2 public key") from None
        if doc.get("type") != "tcmscan-sm2-public-key" or len(public_hex) != 128:
            raise UsageError(f"{path} is not a tcmscan SM2 public key")
        return PublicKey("SM2-SM3", key_id(bytes.fromhex(public_hex)), public_hex.lower(), path)
    spki = der.unpem(raw, "PUBLIC KEY")
    public_hex = _sm2_public_hex(spki) if spki else None
    if public_hex:
        return PublicKey("SM2-SM3", key_id(bytes.fromhex(public_hex)), public_hex, path)
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{path} is not an Ed25519 or SM2 PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"public key {path} is not an Ed25519 or SM2 key")
    return PublicKey("Ed25519", key_id(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)),
                     key, path)


# -- bundles ------------------------------------------------------------------------------------------------
def build_manifest(doc: dict[str, Any], files: dict[str, bytes], keys: list[SigningKey]) -> dict[str, Any]:
    scan = doc["scan"]
    return {
        "format": MANIFEST_FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tool": {"name": "tcmscan", "version": doc["tool"]["version"]},
        "scan": {"id": scan["id"], "scope": scan["scope"], "exclude": scan["exclude"], "targets": scan["targets"],
                 "created": scan["created"], "started": scan["started"], "finished": scan["finished"],
                 "vantage": scan["vantage"]},
        "baseline": {"id": scan["profile"]["id"], "version": scan["profile"]["version"],
                     "sha256": scan["profile"]["sha256"]},
        "findings_digest": {"algorithm": "sha256", "value": doc["summary"]["findings_digest"],
                            "over": "canonical JSON (sorted, no spaces) of sorted [fingerprint, severity, status]"},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in sorted(files.items())},
        "signatures": [{"algorithm": k.algorithm, "key_id": k.key_id, "file": SIG_FILES[k.algorithm]}
                       for k in keys],
    }


def signed_manifest(doc: dict[str, Any], files: dict[str, bytes], keys: list[SigningKey]) -> dict[str, bytes]:
    """manifest.json and one detached signature per key over its exact bytes (name -> bytes to write)."""
    data = (json.dumps(build_manifest(doc, files, keys), ensure_ascii=False, indent=2, sort_keys=True)
            + "\n").encode()
    out = {MANIFEST: data}
    for k in keys:
        out[SIG_FILES[k.algorithm]] = k.sign(data)
    return out


@dataclass(frozen=True)
class Pins:
    """What the auditor expects of the bundle (`verify --scan-id/--scope/--not-before/--not-after`), so that
    another validly signed bundle, an older scan of the same site, cannot stand in for this one."""

    scan_id: str | None = None
    scope: Scope | None = None
    not_before: dt.datetime | None = None     # the scan started at or after this (aware, UTC)
    not_after: dt.datetime | None = None      # the scan finished at or before this


def _scan_time(scan: dict[str, Any], key: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(scan[key]))
    except (KeyError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def check_pins(manifest: dict[str, Any], pins: Pins) -> list[str]:
    scan = manifest.get("scan") if isinstance(manifest.get("scan"), dict) else {}
    problems = []
    if pins.scan_id is not None and scan.get("id") != pins.scan_id:
        problems.append(f"the bundle is of scan {str(scan.get('id'))[:40]}, not of --scan-id {pins.scan_id}")
    if pins.scope is not None:
        texts = scan.get("scope")
        try:
            same = isinstance(texts, list) and Scope.parse(map(str, texts)).same_allowlist(pins.scope)
        except UsageError:
            same = False
        if not same:
            problems.append(f"the bundle's scope is {str(texts)[:200]}, not --scope {pins.scope.describe()}")
    if pins.not_before is not None:
        started = _scan_time(scan, "started")
        if started is None or started < pins.not_before:
            problems.append(f"the scan started {scan.get('started')}, before --not-before {pins.not_before.isoformat()}")
    if pins.not_after is not None:
        finished = _scan_time(scan, "finished")
        if finished is None or finished > pins.not_after:
            problems.append(f"the scan finished {scan.get('finished')}, after --not-after {pins.not_after.isoformat()}")
    return problems


def _listed_signatures(manifest: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """algorithm -> the manifest's entry for it; an entry that is not one tcmscan writes is a problem."""
    listed: dict[str, dict[str, Any]] = {}
    entries = manifest.get("signatures")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{MANIFEST} lists no signature")
        return listed
    for e in entries:
        alg = e.get("algorithm") if isinstance(e, dict) else None
        if alg not in SIG_FILES or e.get("file") != SIG_FILES[alg] or alg in listed:
            problems.append(f"{MANIFEST} lists an invalid signature entry {str(e)[:80]}")
            continue
        listed[alg] = e
    return listed


def _read_signature(fmt: str, pk: PublicKey, raw: bytes) -> bytes:
    """The signature value in the form PublicKey.verify takes; ValueError when the file cannot hold one."""
    if fmt == MANIFEST_FORMAT_1:   # JSON around base64 (the SM2 value was r || s)
        sig = json.loads(raw)
        if sig.get("algorithm") != pk.algorithm:
            raise ValueError(f"algorithm {sig.get('algorithm')!r}")
        return base64.b64decode(sig["signature"], validate=True)
    if pk.algorithm == "Ed25519":
        if len(raw) != 64:
            raise ValueError(f"{len(raw)} bytes, an Ed25519 signature has 64")
        return raw
    return sm2_signature_raw(raw)


def _check_signature(directory: Path, data: bytes, fmt: str, pk: PublicKey, listed_id: str | None) -> list[str]:
    name = SIG_FILES[pk.algorithm]
    raw = (directory / name).read_bytes()
    try:
        signature = _read_signature(fmt, pk, raw)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        return [f"{name} is corrupt ({str(e)[:60]}): signature not checked"]
    if pk.verify(data, signature):
        if listed_id is not None and listed_id != pk.key_id:
            return [f"{MANIFEST} names key {str(listed_id)[:32]} for {name}, but it verifies with {pk.path} "
                    f"({pk.key_id})"]
        if fmt == MANIFEST_FORMAT_1:
            # Format 1 kept unsigned hints beside the signature: hold them to what it wrote.
            canonical = json.dumps({"algorithm": pk.algorithm, "key_id": pk.key_id,
                                    "manifest_sha256": hashlib.sha256(data).hexdigest(),
                                    "signature": base64.b64encode(signature).decode()}, indent=2) + "\n"
            if raw != canonical.encode():
                return [f"{name} was altered (the signature holds, its recorded fields do not)"]
        return []
    if listed_id is not None and listed_id != pk.key_id:
        return [f"wrong key: {MANIFEST} says {name} was made with key {str(listed_id)[:32]}, not with {pk.path} "
                f"({pk.key_id})"]
    return [f"{MANIFEST} does not match its {pk.algorithm} signature {name}: the manifest was edited or the "
            f"signature altered"]


def verify_bundle(directory: Path, pubkeys: list[PublicKey], pins: Pins | None = None
                  ) -> tuple[list[str], dict[str, Any] | None]:
    """Problems, one line each (empty = the bundle is intact, every signature its manifest lists is present
    and checked with a given key, and it is the bundle `pins` describes)."""
    problems: list[str] = []
    if not directory.is_dir():
        return [f"{directory} is not a directory"], None
    mpath = directory / MANIFEST
    if not mpath.is_file():
        return [f"missing file {MANIFEST}: not a signed bundle"], None
    data = mpath.read_bytes()
    manifest: dict[str, Any] | None
    try:
        manifest = json.loads(data)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no file list")
    except (ValueError, UnicodeDecodeError) as e:
        problems.append(f"{MANIFEST} is not a valid manifest ({str(e)[:80]}): it was edited or corrupted")
        manifest = None

    fmt = MANIFEST_FORMAT
    listed: dict[str, dict[str, Any]] | None = None
    if manifest is not None:
        fmt = str(manifest.get("format"))
        if fmt not in (MANIFEST_FORMAT, MANIFEST_FORMAT_1):
            problems.append(f"{MANIFEST} has an unknown format {fmt[:40]!r}")
            fmt = MANIFEST_FORMAT
        listed = _listed_signatures(manifest, problems)
    given = {pk.algorithm for pk in pubkeys}
    # A signature the manifest lists is a promise: deleting its file, or not checking it, fails the bundle.
    for alg, name in SIG_FILES.items():
        present = (directory / name).is_file()
        if listed is not None and alg in listed and not present:
            problems.append(f"missing file {name}: the manifest lists an {alg} signature")
        elif listed is not None and alg not in listed and present:
            problems.append(f"extra file {name} (the manifest lists no {alg} signature)")
        elif listed is not None and alg in listed and alg not in given:
            problems.append(f"{name} not checked: no --pubkey for the {alg} signature the manifest lists")
    for pk in pubkeys:
        name = SIG_FILES[pk.algorithm]
        if listed is not None and pk.algorithm not in listed:
            if not (directory / name).is_file():
                problems.append(f"missing file {name}: no {pk.algorithm} signature (the manifest lists none)")
            continue      # an unlisted signature file is reported above; it never counts
        if not (directory / name).is_file():
            if listed is None:
                problems.append(f"missing file {name}: no {pk.algorithm} signature")
            continue
        listed_id = listed[pk.algorithm].get("key_id") if listed is not None else None
        problems += _check_signature(directory, data, fmt, pk, listed_id)

    if manifest is not None:
        if pins is not None:
            problems += check_pins(manifest, pins)
        files = manifest["files"]
        for name, entry in sorted(files.items()):
            p = directory / name
            if "/" in name or name.startswith(".") or name in BUNDLE_META:
                problems.append(f"manifest lists an invalid file name {name!r}")
                continue
            if not p.is_file():
                problems.append(f"missing file {name}")
                continue
            digest = sha256_file(p)
            if not isinstance(entry, dict) or digest != entry.get("sha256"):
                want = entry.get("sha256", "?") if isinstance(entry, dict) else "?"
                problems.append(f"changed file {name} (sha256 {digest[:16]}…, manifest says {str(want)[:16]}…)")
        for p in sorted(directory.iterdir()):
            if p.name not in files and p.name not in BUNDLE_META:
                problems.append(f"extra file {p.name} (not in the manifest)")
    return problems, manifest
