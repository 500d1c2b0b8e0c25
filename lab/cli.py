"""`lab up|down|status [--json]`: register() plugs into tcmscan's argparse; also `python -m lab`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _print_status(st: dict[str, Any]) -> None:
    state = "up" if st.get("running") else "down"
    print(f"lab {state}: subnet {st['subnet']} on bridge {st['bridge']}")
    print(f"inventory {st['inventory']}\ncredentials {st['credentials']}")
    for h in st["hosts"]:
        print(f"  {h['name']:<12} {h['address']:<11} {h['role']:<15} {h['class']:<15} {' '.join(h['services'])}")
    if st.get("hostile"):
        print("hostile hosts (fault injection, outside the ground truth):")
    for h in st.get("hostile", []):
        flap = f"  address flaps (down {h['flap']['down']:g} s / up {h['flap']['up']:g} s)" if h["flap"] else ""
        print(f"  {h['name']:<12} {h['address']:<11} {', '.join(h['services'])}{flap}")


def run(args: argparse.Namespace) -> int:
    # Imported here so `tcmscan --help` does not load the lab.
    from lab import manager
    from lab.build import BuildError
    from lab.netns import LabError
    from lab.topology import TopologyError

    try:
        if args.lab_command == "up":
            st = manager.up(progress=lambda m: print(m, file=sys.stderr))
            print(json.dumps(st, ensure_ascii=False, indent=2)) if args.json else _print_status(st)
        elif args.lab_command == "down":
            manager.down(progress=lambda m: print(m, file=sys.stderr))
        elif args.lab_command == "scale":
            from lab import scale

            if args.scale_command == "up":
                st = scale.up(args.hosts, progress=lambda m: print(m, file=sys.stderr))
            elif args.scale_command == "down":
                scale.down(progress=lambda m: print(m, file=sys.stderr))
                return 0
            else:
                st = scale.status()
            print(json.dumps(st, indent=2) if args.json else
                  f"scale lab {'up' if st['running'] else 'down'}: {len(st['hosts'])} hosts in {st['subnet']}")
        elif args.lab_command == "use":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                print("lab: use: name the command to run: `lab use -- tcmscan scan 10.77.0.0/24 ...`",
                      file=sys.stderr)
                return 2
            return manager.use(command, progress=lambda m: print(m, file=sys.stderr))
        else:
            st = manager.status()
            print(json.dumps(st, ensure_ascii=False, indent=2)) if args.json else _print_status(st)
    except PermissionError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    except (LabError, BuildError, TopologyError, OSError) as exc:
        print(f"lab: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted (run `lab down` to clean up)", file=sys.stderr)
        return 130
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", required=True)
    for name, text in (("up", "build (first time) and start the lab"),
                       ("down", "stop the lab and remove everything it made"),
                       ("status", "hosts, addresses, roles, services")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--json", action="store_true", help="print JSON")
    scale = sub.add_parser("scale", help="the scale mode: many lightweight hosts (sshd, HTTP, HTTPS) in one "
                                         "namespace, for the speed benchmarks")
    scale_sub = scale.add_subparsers(dest="scale_command", required=True)
    scale_up = scale_sub.add_parser("up", help="start N hosts in 10.78.0.0/22")
    scale_up.add_argument("--hosts", type=int, default=250, help="how many addresses (default 250)")
    for name, text in (("down", "stop it and remove everything it made"), ("status", "is it up, which hosts")):
        scale_sub.add_parser(name, help=text)
    for p in scale_sub.choices.values():
        p.add_argument("--json", action="store_true", help="print JSON")
    use = sub.add_parser("use", help="run a command (a scan of the lab) that `lab down` waits for, once the lab "
                                     "subnet is known to be the lab bridge's",
                         description="Refuses (exit 1) unless the lab is up and routed via its bridge; then runs "
                                     "COMMAND and exits with its status. Meanwhile `lab down` waits.")
    use.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    parser.set_defaults(func=run)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `lab` to a parent's subparsers; the parent calls args.func(args)."""
    parser = subparsers.add_parser("lab", help="the fake hospital network (namespace lab)")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="tcmscan fake hospital network")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))
