"""The one vocabulary: every closed list of words the tool uses, in one place.

CLI choices, job-file validation, JSON-schema enums and report labels are generated from these tuples or
tested against them (tests/engine/test_vocab.py); their zh/en labels live in `labels.yaml` beside this file,
read by `scanner.core.labels.label(kind, value, lang)`.
"""

from __future__ import annotations

SEVERITIES = ("info", "low", "medium", "high", "critical")
# Chapter-7 areas, by the prefix of a rule id (crypto.tls.legacy-protocol is in area "crypto").
AREAS = ("crypto", "hardening", "accounts", "audit", "backup", "medical", "data", "network")
ASSET_CLASSES = ("network-device", "server", "medical-device", "workstation", "unknown")
# Network zones an asset sits in; the scanner's own zone (its vantage) is one of them too.
ZONES = ("internet", "dmz", "user", "server", "management", "clinical")
ATTEMPT_STATUSES = ("pending", "completed", "error", "skipped", "not_applicable")
# Why an attempt did not complete. "bug" means our code failed: never read as a pass.
ATTEMPT_REASONS = (
    "connectivity", "timeout", "auth", "no-credentials", "protocol", "unsupported",
    "safe-mode", "device-stopped", "host-key-changed", "host-key-unpinned", "interrupted", "bug",
)
# Verdict of one rule on one asset.
VERDICTS = ("passed", "failed", "waived", "not_assessed", "not_applicable")
# A finding is open, or waived (a risk accepted by its owner until the waiver expires).
FINDING_STATUSES = ("open", "waived")
# Languages of every label, report and notification; the first is the default.
LANGS = ("zh", "en")
# A check's granularity: one attempt per matching service, or one per asset.
GRANULARITIES = ("service", "host")

# Exit codes of every tcmscan command.
EXIT_OK = 0
EXIT_FINDINGS = 1          # findings at or above --fail-on; `verify`: the bundle does not verify
EXIT_USAGE = 2             # bad arguments or input
EXIT_SCAN_FAILED = 3       # the scan could not run
EXIT_DELIVERY = 4          # `run JOB`: scan stored, but a report or an alert could not be delivered
EXIT_VERIFY_FAILED = EXIT_FINDINGS   # `verify`: the bundle does not verify (one "something to act on" code)
EXIT_CODES = {EXIT_OK: "ok", EXIT_FINDINGS: "findings", EXIT_USAGE: "usage",
              EXIT_SCAN_FAILED: "scan-failed", EXIT_DELIVERY: "delivery-failed"}


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)
