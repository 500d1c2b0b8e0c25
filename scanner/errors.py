"""Errors that end a command with one clear line and a documented exit code."""

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_SCAN_FAILED = 3


class TcmscanError(Exception):
    """An error the user can act on; the CLI prints `tcmscan: <message>` and exits with `code`."""

    code = EXIT_USAGE


class UsageError(TcmscanError):
    """Bad arguments or bad input files (exit 2)."""

    code = EXIT_USAGE


class ScanFailed(TcmscanError):
    """The scan could not run (exit 3): missing nmap, locked database, ..."""

    code = EXIT_SCAN_FAILED


class CheckError(Exception):
    """Raised by a check when it cannot assess; `reason` is one of ATTEMPT_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CheckNotApplicable(Exception):
    """Raised by a check when the target turns out not to be what it checks (e.g. not TLS)."""
