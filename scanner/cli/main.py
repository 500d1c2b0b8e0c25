"""The `tcmscan` command. Every error is one line on stderr and a documented exit code:
0 done and nothing at or above --fail-on, 1 findings at or above it, 2 usage or input error, 3 scan could not run
(scanner/core/vocab.py EXIT_*)."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from scanner import __version__
from scanner.assess.baseline import DEFAULT_PROFILE, list_profiles, load_profile
from scanner.assess.evaluate import diff_findings
from scanner.assess.grading import stored_findings
from scanner.cli import keys as keys_cli
from scanner.core.cli_parser import Parser
from scanner.core.errors import TcmscanError, UsageError
from scanner.core.output import dumps, finding_json, findings_csv, observation_json, printable, table
from scanner.core.vocab import (
    ATTEMPT_STATUSES,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_SCAN_FAILED,
    EXIT_USAGE,
    LANGS,
    SEVERITIES,
    severity_rank,
)
from scanner.engine import library_logs
from scanner.engine import settings as scan_settings
from scanner.engine.plugins import load_registry
from scanner.engine.scan import default_data_dir, evaluate_stored, resume_scan, start_scan
from scanner.store import Store

COMMANDS_GROUP = "tcmscan.commands"
DB_HELP = "SQLite database"


def default_db() -> str:
    return os.environ.get("TCMSCAN_DB", str(default_data_dir() / "tcmscan.db"))


def open_store(args: argparse.Namespace) -> Store:
    return Store(args.db)


# -- scan ---------------------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.resume:
        scan_id = resume_scan(args.resume, store, credentials=args.credentials, quiet=args.quiet)
    else:
        if not args.scope:
            raise UsageError("--scope is required: tcmscan never scans outside an allowlist")
        scan_id = start_scan(scan_settings.from_args(args), store, quiet=args.quiet)
    findings = [f for f in store.findings(scan_id) if f.status == "open"]
    counts = {s: sum(1 for f in findings if f.severity == s) for s in reversed(SEVERITIES)}
    print(scan_id)
    if not args.quiet:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
        print(f"scan {scan_id} done: findings {summary}; see 'tcmscan findings {scan_id}'", file=sys.stderr)
    threshold = severity_rank(args.fail_on)
    return EXIT_FINDINGS if any(severity_rank(f.severity) >= threshold for f in findings) else EXIT_OK


def cmd_scans(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = store.scans()
    if args.format == "json":
        print(dumps(rows))
        return EXIT_OK
    print(table([[r["id"], r["status"], r["phase"], r["created"], ",".join(r["targets"])[:40], r["profile_id"]]
                 for r in rows], ["scan", "status", "phase", "created", "targets", "profile"]))
    return EXIT_OK


def _scan_id(store: Store, scan_id: str | None) -> str:
    if scan_id:
        store.scan(scan_id)
        return scan_id
    return store.latest_scan_id()


def cmd_findings(args: argparse.Namespace) -> int:
    store = open_store(args)
    scan_id = _scan_id(store, args.scan_id)
    findings = stored_findings(store, scan_id)
    if args.min_severity:
        findings = [f for f in findings if severity_rank(f.severity) >= severity_rank(args.min_severity)]
    if args.format == "json":
        print(dumps([finding_json(f) for f in findings]))
    elif args.format == "csv":
        names = {a.address: a.name for a in store.assets(scan_id)}
        sys.stdout.write(findings_csv([finding_json(f) for f in findings], names))
    else:
        title = "title_zh" if args.lang == "zh" else "title_en"
        print(table([[f.severity, f.address, f.port or "", f.rule_id, getattr(f, title)[:60],
                      "waived" if f.status == "waived" else ""] for f in findings],
                    ["severity", "host", "port", "rule", "title", ""]))
    return EXIT_OK


def cmd_observations(args: argparse.Namespace) -> int:
    store = open_store(args)
    obs = store.observations(_scan_id(store, args.scan_id))
    if args.check:
        obs = [o for o in obs if o.check_id == args.check or o.check_id.startswith(args.check + ".")]
    print(dumps([observation_json(o) for o in obs]))
    return EXIT_OK


def cmd_attempts(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = store.attempts(_scan_id(store, args.scan_id))
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.format == "json":
        print(dumps(rows))
        return EXIT_OK
    print(table([[r["address"], r["port"] or "", r["check_id"], r["status"], r["reason"], r["detail"][:60],
                  f"{r['duration']:.2f}"] for r in rows],
                ["host", "port", "check", "status", "reason", "detail", "s"]))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    store = open_store(args)
    store.scan(args.old)
    store.scan(args.new)
    d = diff_findings(stored_findings(store, args.old), stored_findings(store, args.new),
                      store.rule_results(args.new))
    if args.format == "json":
        print(dumps({k: [finding_json(f) for f in v] for k, v in d.items()}))
        return EXIT_OK
    rows = [[k, f.severity, f.address, f.port or "", f.rule_id] for k, v in d.items() for f in v]
    print(table(rows, ["change", "severity", "host", "port", "rule"]))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    store = open_store(args)
    row = store.scan(args.scan_id)
    if row["phase"] not in ("ran", "done"):
        raise UsageError(f"scan {args.scan_id} has not finished running its checks (resume it first)")
    profile = load_profile(args.profile)
    evaluate_stored(args.scan_id, store, profile)
    n = sum(1 for f in store.findings(args.scan_id) if f.status == "open")
    print(f"scan {args.scan_id} re-evaluated against {profile.id} {profile.version}: {n} open findings")
    return EXIT_OK


# -- checks and baselines -------------------------------------------------------------------------------
def cmd_checks_list(args: argparse.Namespace) -> int:
    reg = load_registry()
    if args.json:
        print(dumps({"checks": [c.meta.to_dict() | {"entry_point": c.entry_point} for c in reg.checks.values()],
                     "errors": reg.errors}))
    else:
        print(table([[c.meta.id, c.meta.version, c.meta.granularity, ",".join(c.meta.classes) or "all",
                      "yes" if c.meta.intrusive else "", c.meta.needs_credentials, c.meta.title_en]
                     for c in reg.checks.values()],
                    ["id", "version", "granularity", "classes", "intrusive", "creds", "title"]))
    for name, err in reg.errors.items():
        print(printable(f"tcmscan: warning: check plug-in {name} failed to load: {err}"), file=sys.stderr)
    return EXIT_OK


def cmd_baseline_list(args: argparse.Namespace) -> int:
    for pid in list_profiles():
        p = load_profile(pid)
        print(f"{p.id}\t{p.version}\t{len(p.rules)} rules\t{p.title['en']}")
    return EXIT_OK


def cmd_baseline_show(args: argparse.Namespace) -> int:
    p = load_profile(args.profile)
    if args.json:
        print(dumps({"id": p.id, "version": p.version, "sha256": p.sha256, "chain": p.chain, "params": p.params,
                     "rules": [r.to_dict() for r in p.rules]}))
        return EXIT_OK
    print(f"{p.id} {p.version} sha256:{p.sha256}\ninherits: {' <- '.join(p.chain)}")
    print(table([[r.id, r.severity, r.check, r.basis["kind"], "" if r.enabled else "disabled",
                  r.title["zh"] if args.lang == "zh" else r.title["en"]] for r in p.rules],
                ["rule", "severity", "check", "basis", "", "title"]))
    return EXIT_OK


def cmd_baseline_validate(args: argparse.Namespace) -> int:
    p = load_profile(args.profile)
    reg = load_registry()
    unknown = sorted({r.check for r in p.rules if r.check not in reg.checks})
    print(f"{p.id} {p.version}: {len(p.rules)} rules valid (sha256 {p.sha256[:16]})")
    if unknown:
        print(f"tcmscan: warning: rules read checks that are not installed: {', '.join(unknown)}", file=sys.stderr)
    return EXIT_OK


def cmd_waive(args: argparse.Namespace) -> int:
    import datetime as dt

    try:
        dt.date.fromisoformat(args.expires)
    except ValueError:
        raise UsageError(f"--expires must be a date YYYY-MM-DD, not {args.expires!r}") from None
    store = open_store(args)
    wid = store.add_waiver({"rule_id": args.rule, "host": args.host, "port": args.port, "owner": args.owner,
                            "reason": args.reason, "expires": args.expires,
                            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    print(f"waiver {wid} recorded; re-evaluate a scan to apply it ('tcmscan evaluate SCAN_ID')")
    return EXIT_OK


def cmd_waivers(args: argparse.Namespace) -> int:
    store = open_store(args)
    print(table([[w["id"], w["rule_id"], w["host"], w["port"] or "", w["owner"], w["expires"], w["reason"][:40]]
                 for w in store.waivers()], ["id", "rule", "host", "port", "owner", "expires", "reason"]))
    return EXIT_OK


# -- parser -------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tcmscan", description="Security-posture and risk-assessment scanner for hospitals "
                "(TCM hospital spec 2024 ch. 7, GB/T 22239-2019 L3, GB/T 39786-2021, GB/T 20984-2022).")
    p.add_argument("--version", action="version", version=f"tcmscan {__version__}")
    p.add_argument("--db", default=default_db(), metavar="FILE",
                   help=f"{DB_HELP} (default: $TCMSCAN_DB or %(default)s); also after the sub-command")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    s = sub.add_parser("scan", help="discover, check and evaluate targets")
    scan_settings.add_arguments(s)         # every scan setting, declared once in scanner/engine/settings.py
    s.add_argument("--fail-on", default="high", choices=SEVERITIES, help="exit 1 at or above (default %(default)s)")
    s.add_argument("--resume", metavar="SCAN_ID", help="finish an interrupted scan")
    s.add_argument("-q", "--quiet", action="store_true", help="print only the scan id")
    s.set_defaults(func=cmd_scan)

    s = sub.add_parser("scans", help="list stored scans")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.set_defaults(func=cmd_scans)

    s = sub.add_parser("findings", help="findings of a scan (default: the latest)")
    s.add_argument("scan_id", nargs="?")
    s.add_argument("--format", choices=["table", "json", "csv"], default="table")
    s.add_argument("--lang", choices=LANGS, default=LANGS[0])
    s.add_argument("--min-severity", choices=SEVERITIES)
    s.set_defaults(func=cmd_findings)

    s = sub.add_parser("observations", help="facts the checks saw (default: the latest scan)")
    s.add_argument("scan_id", nargs="?")
    s.add_argument("--format", choices=["json"], default="json")
    s.add_argument("--check", help="only this check or family")
    s.set_defaults(func=cmd_observations)

    s = sub.add_parser("attempts", help="every (check, asset) attempt with status and reason")
    s.add_argument("scan_id", nargs="?")
    s.add_argument("--status", choices=ATTEMPT_STATUSES)
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.set_defaults(func=cmd_attempts)

    s = sub.add_parser("diff", help="new / fixed / persisting / waived between two scans")
    s.add_argument("old")
    s.add_argument("new")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("evaluate", help="re-judge a stored scan against a profile, without rescanning")
    s.add_argument("scan_id")
    s.add_argument("--profile", default=DEFAULT_PROFILE)
    s.set_defaults(func=cmd_evaluate)

    checks = sub.add_parser("checks", help="installed check plug-ins").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", parser_class=Parser, required=True)
    s = checks.add_parser("list", help="list checks")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_checks_list)

    base = sub.add_parser("baseline", help="baseline profiles").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", parser_class=Parser, required=True)
    base.add_parser("list", help="built-in profiles").set_defaults(func=cmd_baseline_list)
    s = base.add_parser("show", help="rules of a profile")
    s.add_argument("profile", nargs="?", default=DEFAULT_PROFILE)
    s.add_argument("--json", action="store_true")
    s.add_argument("--lang", choices=LANGS, default="en")
    s.set_defaults(func=cmd_baseline_show)
    s = base.add_parser("validate", help="validate a profile (id or file; default the built-in one)")
    s.add_argument("profile", nargs="?", default=DEFAULT_PROFILE)
    s.set_defaults(func=cmd_baseline_validate)

    s = sub.add_parser("waive", help="accept a finding: owner, reason and expiry required")
    s.add_argument("rule", help="rule id (glob allowed, e.g. 'crypto.tls.*')")
    s.add_argument("--host", required=True, help="address, CIDR or *")
    s.add_argument("--port", type=scan_settings.port_arg)
    s.add_argument("--owner", required=True)
    s.add_argument("--reason", required=True)
    s.add_argument("--expires", required=True, help="YYYY-MM-DD")
    s.set_defaults(func=cmd_waive)
    sub.add_parser("waivers", help="list waivers").set_defaults(func=cmd_waivers)
    keys_cli.register(sub)                 # keys generate / keys pin (scanner/cli/keys.py)

    for _name, register in _extensions():
        register(sub)
    _db_after_subcommand(sub)
    return p


def _db_after_subcommand(sub: argparse._SubParsersAction) -> None:
    """`--db` after any sub-command too (`tcmscan scan ... --db FILE`), plug-ins' included. It has no default
    there, so the value before the sub-command (or its default) stands unless one is given after it, which wins."""
    for parser in dict.fromkeys(sub.choices.values()):          # a parser with aliases is listed once
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            _db_after_subcommand(action)
        if not nested and "--db" not in parser._option_string_actions:
            parser.add_argument("--db", default=argparse.SUPPRESS, metavar="FILE",
                                help=f"{DB_HELP} (also before the sub-command)")


def _extensions() -> list[tuple[str, Callable[[Any], None]]]:
    """Sub-commands that live with their own package (lab, report, schedule, a hospital's own), registered
    like checks: `[project.entry-points."tcmscan.commands"] NAME = "module:register"`. One that fails to load is
    named on stderr, never skipped in silence."""
    found = []
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except Exception as e:  # a broken plug-in must not take the other commands down with it
            print(printable(f"tcmscan: warning: command plug-in {ep.name} ({ep.value}) failed to load: "
                            f"{type(e).__name__}: {e}"), file=sys.stderr)
            continue
        found.append((ep.name, register))
    return found


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _on_sigterm)
    library_logs.install()      # a library's log records and dying threads: one line or an attempt's detail
    try:
        return args.func(args)
    except TcmscanError as e:
        print(printable(f"tcmscan: {e}"), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("tcmscan: interrupted; completed work is stored (see 'tcmscan scans', then 'tcmscan scan --resume "
              "SCAN_ID')", file=sys.stderr)
        return EXIT_SCAN_FAILED
    except sqlite3.OperationalError as e:
        what = "locked by another process" if "locked" in str(e) else str(e)
        print(printable(f"tcmscan: database {args.db}: {what}"), file=sys.stderr)
        return EXIT_SCAN_FAILED
    except BrokenPipeError:
        return EXIT_OK


def run() -> None:  # pragma: no cover - console entry
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
