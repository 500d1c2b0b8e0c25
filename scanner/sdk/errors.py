"""What a check raises when it cannot assess, or finds the target is not what it checks."""

from __future__ import annotations

import sys
from pathlib import Path

from scanner.core.vocab import ATTEMPT_REASONS


class CheckError(Exception):
    """Raised by a check when it cannot assess; `reason` is one of ATTEMPT_REASONS.

    Any other reason is a bug in the check: the constructor raises ValueError naming the reason and where it
    was raised, so the runner records the attempt with reason "bug" (never an unknown word in the store that
    a report could not label, nor a reason read as something it is not)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in ATTEMPT_REASONS:
            caller = sys._getframe(1)
            raise ValueError(f"CheckError reason {reason!r} is not one of {', '.join(ATTEMPT_REASONS)} "
                             f"(raised at {Path(caller.f_code.co_filename).name}:{caller.f_lineno})")
        super().__init__(reason, detail)     # args that rebuild it: copy and pickle pass the check again
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


class CheckNotApplicable(Exception):
    """Raised by a check when the target turns out not to be what it checks (e.g. not TLS)."""
