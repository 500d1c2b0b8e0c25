"""`tcmscan keys`: report signing keys (`generate`) and SSH host-key pins (`pin`).

It lives here rather than in reports/ because pinning needs scanner.sdk (paramiko and the pin file), which
reports/ may not import. Exit codes: 0 done; 1 the host presents a key other than its pin (nothing written
without --replace); 2 usage or input error; 3 the host could not be reached or offered no usable key.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import paramiko

from scanner.core.cli_parser import Parser
from scanner.core.errors import ScanFailed, UsageError
from scanner.core.vocab import EXIT_FINDINGS, EXIT_OK
from scanner.engine.scan import known_hosts_path
from scanner.engine.settings import port_arg
from scanner.sdk.errors import CheckError
from scanner.sdk.ssh_session import (
    HOST_KEY_ALGORITHMS,
    KnownHosts,
    client_transport,
    fingerprint,
    host_name,
    start_client,
)

PIN_TIMEOUT = 10.0     # seconds per connection and handshake, as a scan's SSH session allows
# paramiko logs a server without a key of the type asked for as an ERROR from its thread: here that is the
# expected answer, so the probing transports log to a channel that says nothing (failures raise anyway).
_PROBE_LOG = logging.getLogger("tcmscan.keys-pin")
_PROBE_LOG.addHandler(logging.NullHandler())
_PROBE_LOG.propagate = False


# -- keys generate (report signing) ----------------------------------------------------------------------------
def cmd_keys_generate(args: argparse.Namespace) -> int:
    from reports.signing import generate_keys, read_passphrase

    passphrase = read_passphrase(args.passphrase_file, confirm=True)
    for p in generate_keys(Path(args.out), passphrase, sm2=args.sm2):
        print(p)
    return EXIT_OK


# -- keys pin (SSH host keys) ----------------------------------------------------------------------------------
def offered_keys(address: str, port: int, timeout: float) -> list[tuple[str, str]]:
    """(type, base64) of every host key the server presents, one handshake per key type (as ssh-keyscan does:
    a server presents one key per connection, of the first type both sides support). No authentication."""
    keys = []
    for key_type, algorithms in HOST_KEY_ALGORITHMS.items():
        try:
            sock = socket.create_connection((address, port), timeout=timeout)
        except OSError as e:
            raise ScanFailed(f"keys pin: cannot connect to {host_name(address, port)}: {e.strerror or e}") from None
        # the scan's own bounded handshake: a hostile host cannot fill memory or hang `keys pin` either
        transport = client_transport(sock)
        transport.set_log_channel(_PROBE_LOG.name)
        try:
            transport.get_security_options().key_types = list(algorithms)
            start_client(transport, timeout=timeout)
            key = transport.get_remote_server_key()
            keys.append((key.get_name(), key.get_base64()))
        except paramiko.ssh_exception.IncompatiblePeer:
            continue                                   # the server has no key of this type
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise ScanFailed(f"keys pin: SSH handshake with {host_name(address, port)} failed "
                             f"({key_type}): {e or type(e).__name__}") from None
        except CheckError as e:                        # the peer used up the handshake's time or bytes
            raise ScanFailed(f"keys pin: SSH handshake with {host_name(address, port)} failed "
                             f"({key_type}): {e.detail}") from None
        finally:
            transport.close()
    if not keys:
        raise ScanFailed(f"keys pin: {host_name(address, port)} offered no host key of a type tcmscan reads "
                         f"({', '.join(HOST_KEY_ALGORITHMS)})")
    return keys


def _blob_type(b64: str) -> str:
    try:
        return paramiko.Message(base64.b64decode(b64, validate=True)).get_text()
    except Exception:  # noqa: BLE001 - any malformed blob is simply not a key
        return ""


def _names_host(pattern: str, name: str) -> bool:
    """An OpenSSH known_hosts host pattern names exactly `name`: plain, or hashed (`|1|salt|hmac-sha1`, which
    can only be checked by hashing the name we look for). Wildcards and negations are not supported."""
    if pattern.startswith("|1|"):
        try:
            salt, digest = (base64.b64decode(p) for p in pattern[3:].split("|", 1))
        except ValueError:
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)
    return pattern == name


def keys_from_known_hosts(path: Path, address: str, port: int) -> list[tuple[str, str]]:
    """(type, base64) of the host's keys in an OpenSSH known_hosts file. Lines are matched by the host's name as
    OpenSSH writes it (`address`, or `[address]:port`), plain or hashed; a key on a @revoked line is never
    taken; @cert-authority lines and wildcard patterns are skipped."""
    name = host_name(address, port)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read known_hosts file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"known_hosts file {path} is not UTF-8 text") from None
    found: dict[str, str] = {}
    revoked: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        marker = parts.pop(0) if parts[0].startswith("@") else ""
        if len(parts) < 3:
            continue
        hosts, key_type, b64 = parts[:3]
        if marker == "@revoked":
            revoked.add(b64)
            continue
        if marker or key_type not in HOST_KEY_ALGORITHMS or not any(_names_host(h, name) for h in hosts.split(",")):
            continue
        if _blob_type(b64) != key_type:
            raise UsageError(f"known_hosts file {path}, line {n}: not a valid {key_type} key")
        if found.get(key_type, b64) != b64:
            raise UsageError(f"known_hosts file {path}: two different {key_type} keys for {name}; keep the right one")
        found[key_type] = b64
    keys = [(t, b) for t, b in found.items() if b not in revoked]
    if not keys:
        raise UsageError(f"known_hosts file {path} has no usable key for {name} (plain or hashed host names; "
                         f"types {', '.join(HOST_KEY_ALGORITHMS)})")
    return keys


def cmd_keys_pin(args: argparse.Namespace) -> int:
    try:
        address = str(ipaddress.ip_address(args.host))
    except ValueError:
        raise UsageError(f"keys pin: HOST must be an IP address (scans pin hosts by address), not {args.host!r}") \
            from None
    name = host_name(address, args.port)
    if args.from_known_hosts:
        keys = keys_from_known_hosts(Path(args.from_known_hosts), address, args.port)
    else:
        keys = offered_keys(address, args.port, PIN_TIMEOUT)
    known = KnownHosts(known_hosts_path(args.known_hosts))
    pins = known.pins(name)
    # Any pin differing from what the host presents, or pins none of which it presents, is a changed host:
    # adding its keys beside the old ones would trust a man in the middle.
    differ = [t for t, b in keys if t in pins and pins[t] != b]
    unmatched = bool(pins) and not any(pins.get(t) == b for t, b in keys)
    for t, b in keys:
        state = "pinned already" if pins.get(t) == b else "CHANGED" if t in differ else "new"
        print(f"{name} {t} {fingerprint(b)} {state}")
    if (differ or unmatched) and not args.replace:
        old = ", ".join(f"{t} {fingerprint(b)}" for t, b in pins.items())
        print(f"tcmscan: keys pin: {name} does not present its pinned key ({old}); nothing written. Confirm the "
              f"new key with the host's owner, then run again with --replace", file=sys.stderr)
        return EXIT_FINDINGS
    known.pin(name, keys, replace=args.replace)
    print(f"pinned in {known.path}")
    return EXIT_OK


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="report signing keys; SSH host-key pins").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", parser_class=Parser, required=True)
    s = keys.add_parser("generate", help="create an Ed25519 (and optionally SM2) key pair, passphrase-encrypted")
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--sm2", action="store_true", help="also create an SM2 key pair (ShangMi, SM3 digest)")
    s.add_argument("--passphrase-file", metavar="FILE", help="passphrase (else $TCMSCAN_KEY_PASSPHRASE, or a prompt)")
    s.set_defaults(func=cmd_keys_generate)

    s = keys.add_parser("pin", help="pin a host's SSH host keys (every type it offers), for --host-keys strict")
    s.add_argument("host", metavar="HOST", help="IP address, as scans name the host")
    s.add_argument("--port", type=port_arg, default=22, help="SSH port (default %(default)s)")
    s.add_argument("--known-hosts", metavar="FILE", help="pin file (default: the scan's, <data dir>/known_hosts)")
    s.add_argument("--from-known-hosts", metavar="FILE",
                   help="take the keys from an OpenSSH known_hosts file (plain or hashed names) instead of "
                        "connecting")
    s.add_argument("--replace", action="store_true", help="drop the host's earlier pins (a confirmed new key)")
    s.set_defaults(func=cmd_keys_pin)
