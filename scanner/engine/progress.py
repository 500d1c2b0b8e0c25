"""A progress bar on a terminal, silence in pipes (cron mails stay short)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from scanner.core.output import printable


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.total, self.done = label, max(total, 0), 0
        self.start = time.monotonic()
        self._last = 0.0

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        width = 30
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        # the note can name what a target sent (a host name): escaped, and cut after escaping so it stays one line
        note = printable(note)[:40]
        self.stream.write(f"\r{self.label:<10} [{bar}] {self.done}/{self.total} {now - self.start:5.1f}s {note:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def say(message: str, quiet: bool = False) -> None:
    """One status line on stderr (stdout is kept for machine-readable output), control characters escaped."""
    if not quiet:
        print(printable(message), file=sys.stderr, flush=True)
