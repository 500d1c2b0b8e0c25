"""`tcmscan report` and `tcmscan verify` (loaded by scanner/cli/main.py `_extensions`); `tcmscan keys` is
scanner/cli/keys.py.

Exit codes: 0 done / bundle verified; 1 verification failed (one line per problem on stderr); 2 usage or
input error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from scanner.core.errors import UsageError
from scanner.core.output import printable
from scanner.core.scope import Scope
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


def _scope(text: str) -> Scope:
    texts = [t for t in text.split(",") if t.strip()]
    if not texts:
        raise argparse.ArgumentTypeError("no network given")
    try:
        return Scope.parse(texts)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _date(text: str, *, end_of_day: bool) -> dt.datetime:
    """An ISO date (the whole day, UTC) or date and time (UTC unless it carries an offset)."""
    try:
        if len(text) == 10:
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
            return day + dt.timedelta(days=1, microseconds=-1) if end_of_day else day
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO date and time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def cmd_verify(args: argparse.Namespace) -> int:
    from reports.signing import Pins, load_public_key, verify_bundle

    keys = [load_public_key(p) for p in args.pubkey]
    pins = Pins(scan_id=args.scan_id, scope=args.scope, not_before=args.not_before, not_after=args.not_after)
    if pins.not_before and pins.not_after and pins.not_before > pins.not_after:
        raise UsageError("verify: --not-before is after --not-after")
    problems, manifest = verify_bundle(Path(args.directory), keys, pins)
    if problems:
        for p in problems:
            print(f"tcmscan: verify: {printable(p)}", file=sys.stderr)   # names and fields come from the bundle
        print(f"FAILED: {len(problems)} problem(s) in {args.directory}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    assert manifest is not None
    algs = ", ".join(f"{k.algorithm} {k.key_id}" for k in keys)
    scan = manifest["scan"]
    print(printable(f"OK: {len(manifest['files'])} files intact, scan {scan['id']}, signed by {algs}; scope "
                    f"{', '.join(scan['scope'])}, {scan['started']} to {scan['finished']}"))
    return EXIT_OK


def register(sub: Any) -> None:
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

    s = sub.add_parser("verify", help="check a signed report bundle offline")
    s.add_argument("directory", metavar="DIR")
    s.add_argument("--pubkey", action="append", required=True, metavar="FILE",
                   help="public key (Ed25519 or SM2 PEM); one for every signature the bundle lists")
    s.add_argument("--scan-id", metavar="ID", help="the bundle must be of this scan")
    s.add_argument("--scope", type=_scope, metavar="CIDR[,..]", help="the scan's allowlist must be these networks")
    s.add_argument("--not-before", type=lambda t: _date(t, end_of_day=False), metavar="DATE",
                   help="the scan started on or after DATE (YYYY-MM-DD, UTC, or an ISO date and time)")
    s.add_argument("--not-after", type=lambda t: _date(t, end_of_day=True), metavar="DATE",
                   help="the scan finished on or before DATE (a date alone: by the end of that day, UTC)")
    s.set_defaults(func=cmd_verify)

