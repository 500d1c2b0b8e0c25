"""ftplib on a socket opened by the check context (scope, pacing, back-off), bounded in time and bytes.

ftplib is the standard library's well-kept FTP client; only its `connect()` opens its own socket, so we
hand it ours, wrapped in a BoundedSocket: ftplib's own timeout restarts with every byte, so a server sending
one byte a second would hold a session for hours (its line limit, 8192 bytes, is the only other bound).
Shared by services.ftp-anonymous and creds.default.
"""

from __future__ import annotations

import ftplib

from scanner.sdk.bounded import BoundedSocket
from scanner.sdk.context import CheckContext
from scanner.sdk.errors import CheckError

IO_TIMEOUT = 6.0
SESSION_SECONDS = 20.0           # after the greeting: USER, PASS (a refusal may wait out a PAM delay of ~3 s), QUIT
SESSION_MAX_BYTES = 64 * 1024    # a multi-line greeting is a few hundred bytes


def ftp_session(ctx: CheckContext) -> tuple[ftplib.FTP, str]:
    """A logged-out FTP control connection and the server's welcome line."""
    sock = ctx.connect(timeout=IO_TIMEOUT)
    # the greeting comes at once or not at all; the login that follows has a session's time
    bounded = BoundedSocket(sock, seconds=min(IO_TIMEOUT, ctx.remaining()), max_bytes=SESSION_MAX_BYTES,
                            what="FTP greeting")
    ftp = ftplib.FTP(timeout=IO_TIMEOUT)
    ftp.sock, ftp.af, ftp.host, ftp.port = bounded, sock.family, ctx.address, ctx.port or 21
    ftp.file = bounded.makefile("r", encoding=ftp.encoding)
    try:
        welcome = ftp.getresp()
    except ftplib.error_temp as e:               # 421 too many connections, service unavailable
        ftp.close()
        raise CheckError("connectivity", f"FTP refused the session: {str(e)[:100]}") from None
    except (ftplib.Error, EOFError, UnicodeDecodeError) as e:
        ftp.close()
        raise CheckError("protocol", f"not an FTP greeting: {str(e)[:100]}") from None
    except OSError as e:
        error = io_error(ftp, e, "FTP greeting")     # before close(), which lets go of the bounded socket
        ftp.close()
        raise error from None
    bounded.restart(min(SESSION_SECONDS, ctx.remaining()))
    bounded.what = "FTP session"
    return ftp, welcome


def io_error(ftp: ftplib.FTP, e: OSError, what: str) -> CheckError:
    """The CheckError for a failed read or write of the session: out of time or bytes, silent, or dropped."""
    if isinstance(ftp.sock, BoundedSocket) and ftp.sock.exceeded is not None:
        return CheckError(ftp.sock.exceeded.reason, ftp.sock.exceeded.detail)
    if isinstance(e, TimeoutError):
        return CheckError("timeout", f"{what}: no answer within {IO_TIMEOUT:.0f} s")
    return CheckError("connectivity", f"{what}: connection failed: {e.strerror or e}")


def try_login(ftp: ftplib.FTP, user: str, password: str) -> tuple[bool, str]:
    """USER/PASS once. (accepted, server reply); a 5xx reply is a refusal, not an error. A reply that does not come
    in time or a dropped connection is a CheckError."""
    try:
        resp = ftp.sendcmd("USER " + user)
        if resp.startswith("3"):
            resp = ftp.sendcmd("PASS " + password)
    except ftplib.error_perm as e:
        return False, str(e)[:120]
    except OSError as e:
        raise io_error(ftp, e, "FTP login") from None
    if not resp.startswith("230"):
        # e.g. a repeated 220 greeting: we cannot tell what the server decided, so we do not say "refused"
        raise ftplib.error_proto(f"unexpected reply to the login: {resp[:80]}")
    return True, resp[:120]


def close(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (ftplib.Error, OSError, EOFError, UnicodeDecodeError):
        pass
    ftp.close()
