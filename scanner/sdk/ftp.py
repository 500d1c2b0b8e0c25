"""ftplib on a socket opened by the check context (scope, pacing, back-off), with a bounded reply length.

ftplib is the standard library's well-kept FTP client; only its `connect()` opens its own socket, so we
hand it ours. Shared by services.ftp-anonymous and creds.default.
"""

from __future__ import annotations

import ftplib

from scanner.sdk.context import CheckContext
from scanner.sdk.errors import CheckError

IO_TIMEOUT = 6.0


def ftp_session(ctx: CheckContext) -> tuple[ftplib.FTP, str]:
    """A logged-out FTP control connection and the server's welcome line."""
    sock = ctx.connect(timeout=IO_TIMEOUT)
    ftp = ftplib.FTP(timeout=IO_TIMEOUT)
    ftp.sock, ftp.af, ftp.host, ftp.port = sock, sock.family, ctx.address, ctx.port or 21
    ftp.file = sock.makefile("r", encoding=ftp.encoding)
    try:
        welcome = ftp.getresp()
    except ftplib.error_temp as e:               # 421 too many connections, service unavailable
        ftp.close()
        raise CheckError("connectivity", f"FTP refused the session: {str(e)[:100]}") from None
    except (ftplib.Error, EOFError, UnicodeDecodeError) as e:
        ftp.close()
        raise CheckError("protocol", f"not an FTP greeting: {str(e)[:100]}") from None
    return ftp, welcome


def try_login(ftp: ftplib.FTP, user: str, password: str) -> tuple[bool, str]:
    """USER/PASS once. (accepted, server reply); a 5xx reply is a refusal, not an error."""
    try:
        resp = ftp.sendcmd("USER " + user)
        if resp.startswith("3"):
            resp = ftp.sendcmd("PASS " + password)
    except ftplib.error_perm as e:
        return False, str(e)[:120]
    if not resp.startswith("230"):
        # e.g. a repeated 220 greeting: we cannot tell what the server decided, so we do not say "refused"
        raise ftplib.error_proto(f"unexpected reply to the login: {resp[:80]}")
    return True, resp[:120]


def close(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (ftplib.Error, OSError, EOFError):
        pass
    ftp.close()
