"""Signed report bundles: an Ed25519 key pair (private key encrypted with a passphrase), an optional SM2/SM3
signature for sites that require ShangMi (GM/T 0003 / GB/T 32918 via the pure-Python `gmssl` package, since
`cryptography` cannot sign with SM2), a manifest of every file and a detached signature over its bytes.

Verification is offline and names each problem: a changed, missing or extra file, a wrong key, an edited
manifest, a corrupt signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from scanner.core.errors import UsageError

MANIFEST = "manifest.json"
SIG_ED25519 = "manifest.sig"
SIG_SM2 = "manifest.sm2.sig"
BUNDLE_META = (MANIFEST, SIG_ED25519, SIG_SM2)
ED_PRIVATE, ED_PUBLIC = "tcmscan-signing-key.pem", "tcmscan-signing-key.pub.pem"
SM2_PRIVATE, SM2_PUBLIC = "tcmscan-sm2-key.json", "tcmscan-sm2-key.pub.json"
SM2_ID = "1234567812345678"    # the default user id of GB/T 32918 / GM/T 0009 signatures
SCRYPT = {"n": 2**15, "r": 8, "p": 1}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:32]


# -- passphrases ---------------------------------------------------------------------------------------------
def read_passphrase(passphrase_file: str | None, *, confirm: bool = False) -> bytes:
    """--passphrase-file, else $TCMSCAN_KEY_PASSPHRASE, else a prompt (only on a terminal)."""
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
    if len(text) < 8:
        raise UsageError("the key passphrase must have at least 8 characters")
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


# -- keys ---------------------------------------------------------------------------------------------------
def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def generate_keys(out: Path, passphrase: bytes, *, sm2: bool = False) -> list[Path]:
    """Write the key pair(s) into `out`; never overwrite an existing key."""
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / ED_PRIVATE, out / ED_PUBLIC] + ([out / SM2_PRIVATE, out / SM2_PUBLIC] if sm2 else [])
    for p in targets:
        if p.exists():
            raise UsageError(f"{p} exists: refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase))
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(out / ED_PRIVATE, pem, 0o600)
    _write_new(out / ED_PUBLIC, pub, 0o644)
    if sm2:
        priv = f"{secrets.randbelow(_sm2_n() - 2) + 1:064x}"
        public_hex = sm2_public_from_private(priv)
        doc = {"type": "tcmscan-sm2-private-key", "curve": "sm2p256v1", "public_key": public_hex,
               **_encrypt_secret(priv.encode(), passphrase)}
        _write_new(out / SM2_PRIVATE, json.dumps(doc, indent=2).encode(), 0o600)
        _write_new(out / SM2_PUBLIC, json.dumps(
            {"type": "tcmscan-sm2-public-key", "curve": "sm2p256v1", "hash": "SM3", "id": SM2_ID,
             "public_key": public_hex, "key_id": key_id(bytes.fromhex(public_hex))}, indent=2).encode(), 0o644)
    return targets


@dataclass
class SigningKey:
    algorithm: str              # Ed25519 | SM2-SM3
    key_id: str
    private: Any                # Ed25519PrivateKey | (private hex, public hex)

    def sign(self, data: bytes) -> bytes:
        if self.algorithm == "Ed25519":
            return self.private.sign(data)
        return sm2_sign(self.private[0], self.private[1], data)


def load_signing_key(path: str, passphrase: bytes) -> SigningKey:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read signing key {path}: {e.strerror}") from None
    if raw.lstrip().startswith(b"{"):
        try:
            doc = json.loads(raw)
        except ValueError:
            raise UsageError(f"{path} is not a key file") from None
        if doc.get("type") != "tcmscan-sm2-private-key":
            raise UsageError(f"{path} is not a tcmscan SM2 private key")
        priv = _decrypt_secret(doc, passphrase, p).decode()
        public_hex = sm2_public_from_private(priv)
        return SigningKey("SM2-SM3", key_id(bytes.fromhex(public_hex)), (priv, public_hex))
    try:
        key = serialization.load_pem_private_key(raw, password=passphrase)
    except TypeError:
        raise UsageError(f"signing key {path} is not encrypted; tcmscan only signs with an encrypted key") from None
    except ValueError as e:
        msg = "wrong passphrase" if "password" in str(e).lower() or "decrypt" in str(e).lower() else str(e)
        raise UsageError(f"cannot load signing key {path}: {msg}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {path} is not an Ed25519 key")
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey("Ed25519", key_id(pub), key)


@dataclass
class PublicKey:
    algorithm: str
    key_id: str
    key: Any                    # Ed25519PublicKey | public hex
    path: str

    def verify(self, data: bytes, signature: bytes) -> bool:
        if self.algorithm == "Ed25519":
            try:
                self.key.verify(signature, data)
                return True
            except InvalidSignature:
                return False
        return sm2_verify(self.key, data, signature)


def load_public_key(path: str) -> PublicKey:
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
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError:
        raise UsageError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"public key {path} is not an Ed25519 key")
    return PublicKey("Ed25519", key_id(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)),
                     key, path)


# -- bundles ------------------------------------------------------------------------------------------------
def build_manifest(out: Path, doc: dict[str, Any], files: list[str], keys: list[SigningKey]) -> dict[str, Any]:
    scan = doc["scan"]
    return {
        "format": "tcmscan-manifest/1",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tool": {"name": "tcmscan", "version": doc["tool"]["version"]},
        "scan": {"id": scan["id"], "scope": scan["scope"], "targets": scan["targets"], "created": scan["created"],
                 "started": scan["started"], "finished": scan["finished"], "vantage": scan["vantage"]},
        "baseline": {"id": scan["profile"]["id"], "version": scan["profile"]["version"],
                     "sha256": scan["profile"]["sha256"]},
        "findings_digest": {"algorithm": "sha256", "value": doc["summary"]["findings_digest"],
                            "over": "canonical JSON (sorted, no spaces) of sorted [fingerprint, severity, status]"},
        "files": {name: {"sha256": sha256_file(out / name), "size": (out / name).stat().st_size}
                  for name in sorted(files)},
        "signatures": [{"algorithm": k.algorithm, "key_id": k.key_id,
                        "file": SIG_ED25519 if k.algorithm == "Ed25519" else SIG_SM2} for k in keys],
    }


def sign_bundle(out: Path, doc: dict[str, Any], files: list[str], keys: list[SigningKey]) -> list[str]:
    """Write manifest.json and one detached signature per key over its exact bytes."""
    manifest = build_manifest(out, doc, files, keys)
    data = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    (out / MANIFEST).write_bytes(data)
    written = [MANIFEST]
    for k in keys:
        name = SIG_ED25519 if k.algorithm == "Ed25519" else SIG_SM2
        # The signature is over the manifest bytes only; key_id and manifest_sha256 are unsigned hints that let
        # verify tell a wrong key from an edited manifest from a corrupt signature.
        sig = {"algorithm": k.algorithm, "key_id": k.key_id, "manifest_sha256": hashlib.sha256(data).hexdigest(),
               "signature": base64.b64encode(k.sign(data)).decode()}
        (out / name).write_text(json.dumps(sig, indent=2) + "\n", encoding="utf-8")
        written.append(name)
    return written


def verify_bundle(directory: Path, pubkeys: list[PublicKey]) -> tuple[list[str], dict[str, Any] | None]:
    """Problems, one line each (empty = the bundle is intact and signed by every given key)."""
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

    for pk in pubkeys:
        name = SIG_ED25519 if pk.algorithm == "Ed25519" else SIG_SM2
        spath = directory / name
        if not spath.is_file():
            problems.append(f"missing file {name}: no {pk.algorithm} signature")
            continue
        try:
            sig = json.loads(spath.read_bytes())
            signature = base64.b64decode(sig["signature"], validate=True)
            if sig.get("algorithm") != pk.algorithm:
                raise ValueError(f"algorithm {sig.get('algorithm')!r}")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            problems.append(f"{name} is corrupt ({str(e)[:60]}): signature not checked")
            continue
        if pk.verify(data, signature):
            # The hints beside the signature are not signed: hold them to what sign_bundle writes.
            canonical = json.dumps({"algorithm": pk.algorithm, "key_id": pk.key_id,
                                    "manifest_sha256": hashlib.sha256(data).hexdigest(),
                                    "signature": base64.b64encode(signature).decode()}, indent=2) + "\n"
            if spath.read_bytes() != canonical.encode():
                problems.append(f"{name} was altered (the signature holds, its recorded fields do not)")
            continue
        if sig.get("key_id") != pk.key_id:
            problems.append(f"wrong key: {name} was made with key {str(sig.get('key_id'))[:32]}, "
                            f"not with {pk.path} ({pk.key_id})")
        elif sig.get("manifest_sha256") != hashlib.sha256(data).hexdigest():
            problems.append(f"{MANIFEST} was edited after signing: its {pk.algorithm} signature does not match")
        else:
            problems.append(f"{name}: the {pk.algorithm} signature value is invalid (signature altered)")

    if manifest is not None:
        listed = manifest["files"]
        for name, entry in sorted(listed.items()):
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
            if p.name not in listed and p.name not in BUNDLE_META:
                problems.append(f"extra file {p.name} (not in the manifest)")
    return problems, manifest
