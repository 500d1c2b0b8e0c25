"""Credentials for authenticated checks. Held in memory only: never written to the database, logs or reports.

The credentials file, and a key passphrase file, must be private to their owner (no permission for group or
others, as OpenSSH demands of a private key): a secret others can read is refused, not warned about."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.core.errors import UsageError
from scanner.core.knowledge import load_yaml

CREDENTIAL_TYPES = ("ssh", "snmp", "snmpv3", "http", "db", "ldap")
# snmpv3: RFC 3414 / RFC 7860 authentication and RFC 3414 / RFC 3826 privacy protocols, spelled as net-snmp's
# snmpget -a / -x (checks/snmp/_v3.py implements exactly these)
SNMPV3_AUTH = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
SNMPV3_PRIV = ("DES", "AES")


def _snmpv3_fields(item: dict[str, Any], where: str) -> None:
    """Check and normalise an snmpv3 entry in place: user, auth_protocol + auth_key (8 characters at least, RFC
    3414 11.2), optional priv_protocol + priv_key. The error never quotes a key."""
    if not str(item.get("user") or ""):
        raise UsageError(f"{where}: an snmpv3 credential needs 'user'")
    auth = str(item.get("auth_protocol") or "").upper()
    if auth not in SNMPV3_AUTH:
        raise UsageError(f"{where}: snmpv3 auth_protocol must be one of {', '.join(SNMPV3_AUTH)}")
    if len(str(item.get("auth_key") or "")) < 8:
        raise UsageError(f"{where}: snmpv3 auth_key missing or shorter than 8 characters (RFC 3414 11.2)")
    item["auth_protocol"], item["auth_key"] = auth, str(item["auth_key"])
    priv = str(item.get("priv_protocol") or "").upper()
    if priv:
        if priv not in SNMPV3_PRIV:
            raise UsageError(f"{where}: snmpv3 priv_protocol must be one of {', '.join(SNMPV3_PRIV)}")
        if len(str(item.get("priv_key") or "")) < 8:
            raise UsageError(f"{where}: snmpv3 priv_key missing or shorter than 8 characters (RFC 3414 11.2)")
        item["priv_protocol"], item["priv_key"] = priv, str(item["priv_key"])
    elif item.get("priv_key"):
        raise UsageError(f"{where}: snmpv3 priv_key without priv_protocol")


@dataclass(repr=False)
class Credential:
    match: str
    type: str
    user: str = ""
    password: str | None = None
    key_file: str | None = None      # neither key_file nor password: the keys of ssh-agent ($SSH_AUTH_SOCK)
    key_passphrase: str | None = None   # from key_passphrase_file: decrypts an encrypted key_file
    port: int | None = None
    sudo: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # a credential printed by accident must not leak its secret
        return f"Credential(match={self.match!r}, type={self.type!r}, user={self.user!r}, secret=***)"

    def matches(self, address: str) -> bool:
        if self.match == "*":
            return True
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.match, strict=False)
        except ValueError:
            return False

    def describe(self) -> dict[str, Any]:
        """What may be stored or shown about a credential: never the secret."""
        if self.type == "snmpv3":
            return {"type": self.type, "user": self.user, "method": "usm",
                    "auth_protocol": self.extra.get("auth_protocol", ""),
                    "priv_protocol": self.extra.get("priv_protocol", "")}
        method = "key" if self.key_file else "password" if self.password is not None else "agent"
        return {"type": self.type, "user": self.user, "method": method}


@dataclass
class CredentialStore:
    items: list[Credential] = field(default_factory=list)

    def find(self, address: str, type_: str) -> Credential | None:
        # most specific match wins: a host entry beats a CIDR beats "*"
        best: tuple[int, Credential] | None = None
        for c in self.items:
            if c.type != type_ or not c.matches(address):
                continue
            prefix = -1 if c.match == "*" else ipaddress.ip_network(c.match, strict=False).prefixlen
            if best is None or prefix > best[0]:
                best = (prefix, c)
        return best[1] if best else None


def _private_text(path: str, what: str) -> str:
    """The file's text, refused when group or others have any permission on it."""
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & 0o077:
                raise UsageError(f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                                 f"it holds secrets: chmod 600 {path}")
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None


def load_credentials(path: str | None) -> CredentialStore:
    if not path:
        return CredentialStore()
    # bounded like every other YAML we read (an alias bomb is refused); a parse error names only the file,
    # since its text could quote a secret
    raw = load_yaml(_private_text(path, "credentials file"), f"credentials file {path}", quote_errors=False)
    if not isinstance(raw, dict) or not isinstance(raw.get("credentials"), list):
        raise UsageError(f"credentials file {path}: expected a mapping with a list 'credentials'")
    store = CredentialStore()
    for i, item in enumerate(raw["credentials"]):
        where = f"credentials file {path}: entry #{i + 1}"
        if not isinstance(item, dict):
            raise UsageError(f"{where}: not a mapping")
        item = dict(item)
        match = str(item.pop("match", ""))
        if match != "*":
            try:
                ipaddress.ip_network(match, strict=False)
            except ValueError:
                raise UsageError(f"{where}: 'match' must be an address, a CIDR or '*'") from None
        type_ = str(item.pop("type", "ssh"))
        if type_ not in CREDENTIAL_TYPES:
            raise UsageError(f"{where}: type must be one of {', '.join(CREDENTIAL_TYPES)}")
        if type_ == "snmpv3":
            _snmpv3_fields(item, where)
        key_file = item.pop("key_file", None)
        if key_file and not Path(key_file).is_file():
            raise UsageError(f"{where}: key file {key_file} does not exist")
        passphrase_file = item.pop("key_passphrase_file", None)
        if passphrase_file and not key_file:
            raise UsageError(f"{where}: key_passphrase_file without key_file")
        # the file's text without its trailing newline, as for the report-signing passphrase file
        passphrase = (_private_text(str(passphrase_file), "key passphrase file").rstrip("\r\n")
                      if passphrase_file else None)
        port = item.pop("port", None)
        store.items.append(Credential(
            match=match, type=type_, user=str(item.pop("user", "")),
            password=None if item.get("password") is None else str(item.pop("password")),
            key_file=key_file, key_passphrase=passphrase, port=int(port) if port else None,
            sudo=bool(item.pop("sudo", False)),
            extra={k: v for k, v in item.items() if k != "password"}))
    return store
