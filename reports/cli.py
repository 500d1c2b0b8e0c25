"""`tcmscan report`, `tcmscan keys generate` and `tcmscan verify` (loaded by scanner/cli/main.py `_extensions`).

Exit codes: 0 done / bundle verified; 1 verification failed (one line per problem on stderr); 2 usage or
input error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scanner.core.vocab import EXIT_OK, EXIT_VERIFY_FAILED

FORMATS = ("html", "pdf", "json", "csv", "sarif")


def _formats(text: str) -> list[str]:
    wanted = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(bad) or text!r} (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(wanted))


def cmd_report(args: argparse.Namespace) -> int:
    from reports.render import write_bundle
    from reports.signing import load_signing_key, read_passphrase
    from scanner.store import Store

    keys = []
    if args.sign or args.sign_sm2:
        passphrase = read_passphrase(args.passphrase_file)
        keys = [load_signing_key(k, passphrase) for k in (args.sign, args.sign_sm2) if k]
    store = Store(args.db)
    scan_id = args.scan_id or store.latest_scan_id()
    written = write_bundle(store, scan_id, Path(args.out), formats=args.format, lang=args.lang, keys=keys,
                           force=args.force)
    for name in written:
        print(Path(args.out) / name)
    return EXIT_OK


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from reports.signing import generate_keys, read_passphrase

    passphrase = read_passphrase(args.passphrase_file, confirm=True)
    for p in generate_keys(Path(args.out), passphrase, sm2=args.sm2):
        print(p)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from reports.signing import load_public_key, verify_bundle

    keys = [load_public_key(p) for p in args.pubkey]
    problems, manifest = verify_bundle(Path(args.directory), keys)
    if problems:
        for p in problems:
            print(f"tcmscan: verify: {p}", file=sys.stderr)
        print(f"FAILED: {len(problems)} problem(s) in {args.directory}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    assert manifest is not None
    algs = ", ".join(f"{k.algorithm} {k.key_id}" for k in keys)
    print(f"OK: {len(manifest['files'])} files intact, scan {manifest['scan']['id']}, signed by {algs}")
    return EXIT_OK


def register(sub: Any) -> None:
    from scanner.core.cli_parser import Parser

    s = sub.add_parser("report", help="write the graded report (HTML, PDF, JSON, CSV, SARIF), optionally signed")
    s.add_argument("scan_id", nargs="?", help="scan id (default: the latest)")
    s.add_argument("--format", type=_formats, default=["html", "json"], metavar="LIST",
                   help=f"comma-separated: {','.join(FORMATS)} (default html,json)")
    s.add_argument("--lang", choices=["zh", "en"], default="zh", help="language of HTML/PDF (default zh)")
    s.add_argument("--out", required=True, metavar="DIR", help="directory for the bundle (created; must be empty)")
    s.add_argument("--sign", metavar="PRIVATE_KEY", help="Ed25519 key from 'tcmscan keys generate'")
    s.add_argument("--sign-sm2", metavar="SM2_KEY", help="also sign with SM2/SM3 (key from 'keys generate --sm2')")
    s.add_argument("--passphrase-file", metavar="FILE", help="key passphrase (else $TCMSCAN_KEY_PASSPHRASE)")
    s.add_argument("--force", action="store_true", help="replace an earlier bundle in --out")
    s.set_defaults(func=cmd_report)

    keys = sub.add_parser("keys", help="report signing keys").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", parser_class=Parser, required=True)
    s = keys.add_parser("generate", help="create an Ed25519 (and optionally SM2) key pair, passphrase-encrypted")
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--sm2", action="store_true", help="also create an SM2 key pair (ShangMi, SM3 digest)")
    s.add_argument("--passphrase-file", metavar="FILE", help="passphrase (else $TCMSCAN_KEY_PASSPHRASE, or a prompt)")
    s.set_defaults(func=cmd_keys_generate)

    s = sub.add_parser("verify", help="check a signed report bundle offline")
    s.add_argument("directory", metavar="DIR")
    s.add_argument("--pubkey", action="append", required=True, metavar="FILE",
                   help="public key (Ed25519 PEM or SM2 .pub.json); repeat to require both signatures")
    s.set_defaults(func=cmd_verify)

