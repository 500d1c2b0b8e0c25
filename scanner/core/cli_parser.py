"""The argument parser every tcmscan command is built with: a usage error is one line and exit 2."""

from __future__ import annotations

import argparse
import sys

from scanner.core.vocab import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        print(f"tcmscan: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_USAGE)
