"""What a check raises when it cannot assess, or finds the target is not what it checks."""

class CheckError(Exception):
    """Raised by a check when it cannot assess; `reason` is one of ATTEMPT_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CheckNotApplicable(Exception):
    """Raised by a check when the target turns out not to be what it checks (e.g. not TLS)."""
