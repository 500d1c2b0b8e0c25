"""The `tcmscan` command: argument parsing and terminal output. Other packages add sub-commands through
the `tcmscan.commands` entry-point group."""

from scanner.cli.main import main, run

__all__ = ["main", "run"]
