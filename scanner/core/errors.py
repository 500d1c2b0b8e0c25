"""Errors that end a command with one clear line and a documented exit code."""

from scanner.core.vocab import EXIT_SCAN_FAILED, EXIT_USAGE


class TcmscanError(Exception):
    """An error the user can act on; the CLI prints `tcmscan: <message>` and exits with `code`."""

    code = EXIT_USAGE


class UsageError(TcmscanError):
    """Bad arguments or bad input files (exit 2)."""

    code = EXIT_USAGE


class ScanFailed(TcmscanError):
    """The scan could not run (exit 3): missing nmap, locked database, ..."""

    code = EXIT_SCAN_FAILED
