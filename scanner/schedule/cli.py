"""`tcmscan schedule add|list|remove|validate` and `tcmscan run JOB` (loaded by scanner/cli/main.py `_extensions`).

Exit codes: 0 done; 2 bad config, cron expression or job name; 3 could not run (the job is already running,
the scan failed, nothing to schedule with); 4 `run` finished the scan but a report or a notification could
not be delivered (the failure is recorded with the run)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from scanner.core.output import printable
from scanner.core.vocab import EXIT_OK
from scanner.schedule.jobs import default_config_path, load_config


def _config(args: argparse.Namespace) -> Any:
    return load_config(args.config)


def cmd_run(args: argparse.Namespace) -> int:
    from scanner.engine.scan import default_data_dir
    from scanner.schedule.run import run_job

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="tcmscan: %(message)s",
                        stream=sys.stderr)
    cfg = _config(args)
    # --db or $TCMSCAN_DB given explicitly wins over the config's data_dir; the job's own `db` wins over both.
    explicit_db = args.db if args.db != str(default_data_dir() / "tcmscan.db") else None
    res = run_job(cfg, args.job, db=explicit_db, quiet=not args.verbose)
    for d in res.notifications:
        if not d.ok:
            print(f"tcmscan: notification {d.channel} to {d.target} failed after {d.attempts} attempt(s) "
                  f"in {d.seconds:g} s: {printable(d.error)}", file=sys.stderr)
    if res.report_status != "ok" and res.status == "done":
        print(f"tcmscan: job {res.job}: report {res.report_status}", file=sys.stderr)
    if res.status != "done":
        nxt = "the next run resumes it" if res.resumable else "nothing was scanned"
        print(f"tcmscan: job {res.job}: scan {res.scan_id} {res.status}: {printable(res.error)} ({nxt})",
              file=sys.stderr)
    print(res.summary())
    return res.exit_code


def cmd_add(args: argparse.Namespace) -> int:
    from scanner.schedule.timers import apply, parse_cron, plan_add

    cron = parse_cron(args.cron)
    cfg = _config(args)
    cfg.job(args.job)                      # an unknown job is refused before anything is written
    backend = args.backend
    if args.print and backend == "auto":
        from scanner.core.errors import ScanFailed
        from scanner.schedule.timers import choose_backend

        try:
            choose_backend("auto", Path(args.root))
        except ScanFailed:
            backend = "systemd"            # nothing to install with here: still show what a systemd host gets
    plan = plan_add(args.job, cron, cfg.path, backend=backend, root=Path(args.root))
    if args.print:
        for path, text in plan.files.items():
            print(f"# {path}" if str(path) != "crontab" else "# new crontab (crontab -l | crontab -)")
            print(text)
        for cmd in plan.commands:
            print("# then: " + " ".join(cmd))
        return EXIT_OK
    apply(plan)
    where = ", ".join(str(p) for p in plan.files)
    print(f"job {args.job} scheduled ({plan.backend}, cron \"{cron.text}\"): {where}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from scanner.core.output import table
    from scanner.schedule.timers import list_installed

    rows = [[i.job, i.backend, i.schedule, i.where] for i in list_installed(Path(args.root))]
    if not rows:
        print("no scheduled tcmscan jobs", file=sys.stderr)
        return EXIT_OK
    print(table(rows, ["job", "backend", "schedule", "installed"]))
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from scanner.schedule.timers import apply_remove, plan_remove

    plan = plan_remove(args.job, Path(args.root))
    apply_remove(plan)
    print(f"job {args.job} unscheduled: removed {', '.join(str(p) for p in plan.files)}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _config(args)
    for j in cfg.jobs.values():
        chans = j.notify.channels()
        print(f"{j.name}\t{len(j.targets)} target(s)\tprofile {j.profile}\treports {','.join(j.report.formats)} "
              f"{','.join(j.report.langs)}{' signed' if j.report.sign_key else ''}\t{chans} notification channel(s)")
    print(f"{cfg.path}: {len(cfg.jobs)} job(s) valid")
    return EXIT_OK


def register(sub: Any) -> None:
    from scanner.core.cli_parser import Parser

    cfg_help = f"job config (TOML; default {default_config_path()})"
    s = sub.add_parser("run", help="run a scheduled job now: scan, report, diff, notify, prune")
    s.add_argument("job", metavar="JOB")
    s.add_argument("--config", metavar="FILE", help=cfg_help)
    s.add_argument("-v", "--verbose", action="store_true", help="show scan progress")
    s.set_defaults(func=cmd_run)

    sched = sub.add_parser("schedule", help="install scan jobs as systemd timers or cron entries").add_subparsers(
        dest="sub", metavar="SUBCOMMAND", parser_class=Parser, required=True)
    s = sched.add_parser("add", help="schedule a job from the config")
    s.add_argument("job", metavar="JOB")
    s.add_argument("--cron", required=True, metavar="EXPR", help='cron expression, e.g. "0 2 * * *" (local time)')
    s.add_argument("--config", metavar="FILE", help=cfg_help)
    s.add_argument("--print", action="store_true", help="show what would be written; write nothing")
    s.add_argument("--backend", choices=["auto", "systemd", "cron.d", "crontab"], default="auto",
                   help="default: systemd when it is PID 1, else /etc/cron.d (root) or crontab")
    s.add_argument("--root", default="/", metavar="DIR", help="install into this tree (packaging; no systemctl)")
    s.set_defaults(func=cmd_add)
    s = sched.add_parser("list", help="scheduled tcmscan jobs")
    s.add_argument("--root", default="/", metavar="DIR")
    s.set_defaults(func=cmd_list)
    s = sched.add_parser("remove", help="unschedule a job")
    s.add_argument("job", metavar="JOB")
    s.add_argument("--root", default="/", metavar="DIR")
    s.set_defaults(func=cmd_remove)
    s = sched.add_parser("validate", help="check the job config")
    s.add_argument("--config", metavar="FILE", help=cfg_help)
    s.set_defaults(func=cmd_validate)
