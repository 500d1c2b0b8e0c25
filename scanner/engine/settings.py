"""Every scan setting declared once: field, `tcmscan scan` flag, job-file key, type, default, validation, help.

`ScanSettings`, the `tcmscan scan` arguments (`add_arguments`, `from_args`) and the scan keys of a [[job]] in
the job file (scanner/schedule/jobs.py) are all generated from `SETTINGS`, so a setting added here reaches the
command line and the job file alike, and a scheduled job can never again lose one.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from scanner.assess.baseline import DEFAULT_PROFILE
from scanner.core.vocab import ZONES
from scanner.engine.runner import DEFAULT_HOST_CAP, DEFAULT_WORKERS
from scanner.sdk.context import HOST_KEY_MODES

# Value types. Lists come from a repeated flag on the command line and a TOML array (or one string) in a job.
TYPES = {
    "strs": "list[str]",        # non-empty strings
    "networks": "list[str]",    # addresses or CIDRs, kept as written (scanner.core.scope.Scope parses them)
    "ports": "list[int]",       # TCP ports 1-65535
    "str": "str",               # with `choices`: one of them
    "int": "int",               # within `bounds`
    "bool": "bool",
    "path": "str | None",       # a file; relative paths: the CLI's to the cwd, a job file's to the file
}


@dataclass(frozen=True)
class Setting:
    name: str                   # ScanSettings field, and key of the settings stored with a scan
    type: str                   # one of TYPES
    default: Any                # ignored when required; a list default is copied for each ScanSettings
    help: str                   # CLI help (argparse %-style); docs/jobs.example.toml says the same per key
    flag: str                   # `tcmscan scan` option; "" = the positional arguments
    key: str                    # key in a [[job]] table
    metavar: str | None = None
    required: bool = False      # a job must give it; `tcmscan scan` too, unless it resumes
    choices: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None
    must_exist: bool = False    # path: a job file naming a missing file is refused when loaded
    restart: bool = False       # changed since a scheduled job's scan died: start afresh instead of resuming

    @property
    def annotation(self) -> str:
        return TYPES[self.type] + (" | None" if self.default is None and self.type in ("strs", "str") else "")


SETTINGS: tuple[Setting, ...] = (
    Setting("targets", "strs", MISSING, "addresses, CIDRs, ranges (a.b.c.d-e) or names", "", "targets",
            metavar="TARGET", required=True, restart=True),
    Setting("scope", "networks", MISSING, "allowlist; repeat for several (required)", "--scope", "scope",
            metavar="CIDR", required=True, restart=True),
    Setting("exclude", "networks", [], "do-not-touch address or CIDR", "--exclude", "exclude", metavar="ADDR",
            restart=True),
    Setting("exclude_mac", "strs", [], "do-not-touch MAC vendor prefix", "--exclude-mac", "exclude_mac",
            metavar="PREFIX"),
    Setting("inventory", "path", None, "asset inventory (YAML)", "--inventory", "inventory", metavar="FILE",
            must_exist=True, restart=True),
    Setting("profile", "str", DEFAULT_PROFILE, "baseline profile id or file (default %(default)s)", "--profile",
            "profile", restart=True),
    Setting("credentials", "path", None, "credentials for authenticated checks (YAML)", "--credentials",
            "credentials", metavar="FILE", must_exist=True),
    Setting("known_hosts", "path", None, "SSH host keys pinned on first use", "--known-hosts", "known_hosts",
            metavar="FILE"),
    Setting("host_keys", "str", HOST_KEY_MODES[0], "SSH host keys: tofu pins an unknown host's key on first use "
            "(listed in the report), strict logs in only to hosts pinned with 'tcmscan keys pin' "
            "(default %(default)s)", "--host-keys", "host_keys", choices=HOST_KEY_MODES),
    Setting("ca_file", "path", None, "CA bundle of the hospital's own PKI, trusted besides the system's",
            "--ca-file", "ca_file", metavar="PEM", must_exist=True),
    Setting("checks", "strs", None, "run only these checks or families", "--checks", "checks", metavar="ID",
            restart=True),
    Setting("extra_ports", "ports", [], "extra TCP port to probe", "--ports", "ports", metavar="PORT",
            restart=True),
    Setting("workers", "int", DEFAULT_WORKERS, "concurrent attempts (default %(default)s)", "--workers",
            "workers", metavar="N", bounds=(1, 256)),
    Setting("host_cap", "int", DEFAULT_HOST_CAP, "concurrent attempts per host; fragile devices always get 1 "
            "(default %(default)s)", "--host-cap", "host_cap", metavar="N", bounds=(1, 64)),
    Setting("vantage", "str", "user", "network zone the scanner runs from (default %(default)s)", "--vantage",
            "vantage", choices=ZONES, restart=True),
    Setting("ping", "bool", True, "treat every target as alive", "--no-ping", "ping"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def _check_options(self: Any) -> dict[str, Any]:
    """Options every attempt receives (plain data: they travel with the AttemptSpec)."""
    return {"tls_ca_file": self.ca_file} if self.ca_file else {}


def _dataclass_field(s: Setting) -> tuple[str, str] | tuple[str, str, Any]:
    if s.required:
        return s.name, s.annotation
    if isinstance(s.default, list):
        return s.name, s.annotation, field(default_factory=lambda d=s.default: copy.copy(d))
    return s.name, s.annotation, field(default=s.default)


ScanSettings = make_dataclass(
    "ScanSettings", [_dataclass_field(s) for s in SETTINGS],
    namespace={"__doc__": "Everything needed to run or resume a scan, one field per SETTINGS entry. Paths only: "
                          "no secret is ever stored.",
               "check_options": _check_options})
ScanSettings.__module__ = __name__      # for pickle and repr (make_dataclass takes no module= before 3.12)


def settings_from_stored(stored: dict[str, Any]) -> Any:
    """The ScanSettings a scan was stored with. A key a later version dropped is ignored; one added since the
    scan was stored takes its default."""
    names = {f.name for f in fields(ScanSettings)}
    return ScanSettings(**{k: v for k, v in stored.items() if k in names})


# -- validation (both surfaces) -----------------------------------------------------------------------------
def problem(s: Setting, value: Any) -> str:
    """What is wrong with a value of the setting's type, or "": the validation the CLI and job file share.
    Type errors are the surface's own (argparse, TOML reading); this checks values."""
    if s.type == "networks":
        for text in value:
            try:
                ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                return f"{text!r} is not an address or CIDR"
    if s.type == "ports" and not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535
                                     for p in value):
        return "must be a list of port numbers 1-65535"
    if s.type == "int" and s.bounds and not s.bounds[0] <= value <= s.bounds[1]:
        return f"must be {s.bounds[0]}-{s.bounds[1]}"
    if s.choices and value not in s.choices:
        return f"must be one of {', '.join(s.choices)}"
    return ""


# -- the command line ---------------------------------------------------------------------------------------
def port_arg(text: str) -> int:
    """argparse type of a TCP port."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {v}")
    return v


def _int_arg(s: Setting) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if why := problem(s, v):
            raise argparse.ArgumentTypeError(f"{why}, not {v}")
        return v
    parse.__name__ = "integer"           # what argparse names in its own messages
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument per setting; `from_args` turns the parsed namespace into ScanSettings. Networks are
    checked when the scan parses its Scope, with the same one-line error as a bad target."""
    for s in SETTINGS:
        if not s.flag:
            parser.add_argument(s.name, nargs="*", metavar=s.metavar, help=s.help)
        elif s.type == "bool":
            parser.add_argument(s.flag, dest=s.name, action="store_false" if s.default else "store_true",
                                help=s.help)
        elif s.type in ("strs", "networks", "ports"):
            parser.add_argument(s.flag, dest=s.name, action="append", metavar=s.metavar, help=s.help,
                                type=port_arg if s.type == "ports" else str)
        elif s.type == "int":
            parser.add_argument(s.flag, dest=s.name, type=_int_arg(s), default=s.default, metavar=s.metavar,
                                help=s.help)
        else:
            parser.add_argument(s.flag, dest=s.name, default=s.default, metavar=s.metavar,
                                choices=s.choices or None, help=s.help)


def from_args(args: argparse.Namespace) -> Any:
    """ScanSettings from `tcmscan scan` arguments; file paths made absolute, so a resumed scan finds them
    from any directory."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        v = getattr(args, s.name)
        if s.type == "path" and v:
            v = str(Path(v).resolve())
        elif v is None and isinstance(s.default, list):
            v = copy.copy(s.default)
        values[s.name] = v
    return ScanSettings(**values)
