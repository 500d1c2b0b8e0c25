"""host.snapshot: one authenticated read of a host over the shared SSH session, emitted as several
observation keys (sshd, password-policy, lockout, idle-timeout, accounts, shadow, logins, services,
audit, logging, log-retention, firewall, updates, world-writable, shadow-file, time-sync, antimalware,
system).

Facts only; the rules in accounts.yaml, audit.yaml and hardening-host.yaml judge them. Each key says
where its facts came from (`sources`); a key whose facts could not be read carries
`unavailable: <reason>` and the rules reading it say "not assessed" (scanner/assess/evaluate.py). Password
hashes never leave the host: only their algorithm prefix (see parse_accounts.py).
"""

from __future__ import annotations

from typing import Any

from checks.host import _items as items
from checks.host._collect import Collector
from scanner.sdk import CheckContext, CheckMeta, Observation
from scanner.sdk.ssh_session import host_session

META = CheckMeta(
    id="host.snapshot",
    version="1.0",
    title_zh="主机配置快照（SSH认证）",
    title_en="Authenticated host snapshot over SSH",
    granularity="host",
    classes=("server", "workstation", "unknown", "network-device"),
    intrusive=True,                 # it logs in: never on a fragile/medical asset in safe mode
    needs_credentials="ssh",
    timeout=120.0,
    description="One SSH login per host (shared session): sshd -T, login.defs, PAM, faillock, TMOUT, "
                "passwd/shadow metadata (hash algorithm prefix only), lastlog, processes, audit/syslog, "
                "logrotate, firewall, pending security updates, /etc permissions, time sync, anti-malware.",
)


def applies(asset: Any, service: Any) -> bool:
    """Hosts that show an SSH service (the credential's port is checked when the session opens)."""
    return any(s.name == "ssh" or s.port == 22 for s in asset.services if s.proto == "tcp")


def run(ctx: CheckContext) -> list[Observation]:
    session = host_session(ctx)
    col = Collector(session, ctx.remaining)
    snap = items.Snapshot(col, ctx.knowledge["host_software"])
    return [ctx.observation(key, data, port=None) for key, data in snap.collect()]
