"""One login attempt per call, per protocol, on a socket from the check context (scope, pacing, back-off).

Each function returns (accepted, detail) or raises `Refused` when the service will not take password logins
at all from here (no point trying the next pair). Libraries: paramiko (SSH), ftplib (FTP), our bounded
HTTP client checks/creds/_web.py (HTTP Basic; HTML forms are checks/creds/_forms.py), PyMySQL (MySQL/MariaDB:
native and caching_sha2 auth), pg8000 (PostgreSQL: md5 and SCRAM); telnet is a small raw-socket dialogue (telnetlib is gone in Python 3.13) refusing every option;
VNC is the SDK's RFB opening and classic VNC authentication (scanner/sdk/rfb.py).
"""

from __future__ import annotations

import base64
import re
import socket
import time

from checks.creds import _web as web
from scanner.sdk import CheckContext, CheckError
from scanner.sdk.bounded import BoundedSocket
from scanner.sdk.ftp import close as ftp_close
from scanner.sdk.ftp import ftp_session
from scanner.sdk.ftp import try_login as ftp_try
from scanner.sdk.http_wire import parse_www_authenticate
from scanner.sdk.rfb import RfbError, handshake, vnc_auth

IO_TIMEOUT = 6.0
MAX_DB_LOGIN_BYTES = 64 * 1024     # greeting, authentication switch, OK/ERR: a few hundred bytes in all


class Refused(Exception):
    """The service refuses password logins from here (no password method, host not allowed, ...)."""


# ------------------------------------------------------------------ SSH

def ssh_login(ctx: CheckContext, user: str, password: str) -> tuple[bool, str]:
    import paramiko  # noqa: PLC0415  (heavy import, only when an SSH login is tried)

    from scanner.sdk.ssh_session import client_transport, raise_if_over_budget, start_client  # noqa: PLC0415

    sock = ctx.connect(timeout=IO_TIMEOUT)
    t = client_transport(sock)     # bounded in time and bytes: paramiko trusts the peer's lengths
    try:
        t.banner_timeout = t.auth_timeout = IO_TIMEOUT
        try:
            start_client(t, timeout=min(IO_TIMEOUT * 2, ctx.remaining()))
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise CheckError("protocol", f"SSH handshake failed: {str(e)[:100] or 'connection closed'}") from None
        try:
            t.auth_password(user, password)
            return t.is_authenticated(), "password accepted"
        except paramiko.BadAuthenticationType as e:
            raise Refused(f"password authentication not offered (methods: {', '.join(e.allowed_types)})") from None
        except paramiko.AuthenticationException:
            raise_if_over_budget(t)
            return False, "password refused"
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise_if_over_budget(t)
            raise CheckError("connectivity", f"SSH connection lost during login: {str(e)[:100]}") from None
    finally:
        t.close()


# ------------------------------------------------------------------ telnet

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
LOGIN_PROMPT = re.compile(rb"(login|username|user name)\s*:\s*$", re.I)
PASSWORD_PROMPT = re.compile(rb"password\s*:\s*$", re.I)
FAILED = re.compile(rb"incorrect|invalid|failed|denied|bad password|login:\s*$", re.I)
SHELL = re.compile(rb"(last login|[$#>]\s*$)", re.I)
MAX_TELNET = 16384


def strip_iac(data: bytes) -> tuple[bytes, bytes]:
    """Remove telnet commands from `data`; return (text, replies) where every DO/WILL is refused."""
    text, replies = bytearray(), bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b != IAC:
            text.append(b)
            i += 1
            continue
        if i + 1 >= len(data):
            break
        cmd = data[i + 1]
        if cmd in (DO, DONT, WILL, WONT):
            if i + 2 >= len(data):
                break
            if cmd == DO:
                replies += bytes([IAC, WONT, data[i + 2]])
            elif cmd == WILL:
                replies += bytes([IAC, DONT, data[i + 2]])
            i += 3
        elif cmd == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            i = len(data) if end < 0 else end + 2
        elif cmd == IAC:
            text.append(IAC)
            i += 2
        else:
            i += 2
    return bytes(text), bytes(replies)


def _telnet_read(sock: socket.socket, pattern: re.Pattern[bytes], seconds: float, ctx: CheckContext) -> bytes:
    buf = b""
    deadline = time.monotonic() + min(seconds, ctx.remaining())
    while not pattern.search(buf.rstrip(b"\0")) and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        text, replies = strip_iac(chunk)
        if replies:
            sock.sendall(replies)
        buf = (buf + text)[-MAX_TELNET:]
    return buf


def telnet_login(ctx: CheckContext, user: str, password: str) -> tuple[bool, str]:
    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        shown = _telnet_read(sock, LOGIN_PROMPT, 10, ctx)
        if not LOGIN_PROMPT.search(shown):
            # no pair was tried: not "refused", which would read as a pass (a silent port, or one that
            # floods or drips text, is not a telnet login we could test)
            if not shown.strip(b"\0 \r\n"):
                raise CheckError("timeout", "telnet: no login prompt (nothing shown) within 10 s")
            raise CheckError("protocol", f"telnet: no login prompt within 10 s ({len(shown)} bytes shown)")
        sock.sendall(user.encode() + b"\r\n")
        if not PASSWORD_PROMPT.search(_telnet_read(sock, PASSWORD_PROMPT, 8, ctx)):
            return False, "no password prompt after the user name"
        sock.sendall(password.encode() + b"\r\n")
        # a failed login takes the PAM fail delay (~3 s) before "Login incorrect"
        after = _telnet_read(sock, re.compile(FAILED.pattern + rb"|" + SHELL.pattern, re.I), 8, ctx)
        if FAILED.search(after):
            return False, "login refused"
        if SHELL.search(after.rstrip()):
            try:
                sock.sendall(b"exit\r\n")
            except OSError:
                pass
            return True, "shell prompt after login"
        return False, "no shell prompt after login (not counted as accepted)"
    except (ConnectionResetError, BrokenPipeError) as e:
        raise CheckError("connectivity", f"telnet connection dropped: {e}") from None
    finally:
        sock.close()


# ------------------------------------------------------------------ FTP

def ftp_login(ctx: CheckContext, user: str, password: str) -> tuple[bool, str]:
    ftp, _welcome = ftp_session(ctx)
    try:
        accepted, reply = ftp_try(ftp, user, password)
        return accepted, reply[:80]
    except CheckError:       # out of time or bytes, dropped: said precisely by the SDK
        raise
    except Exception as e:   # ftplib: error_temp/error_proto/EOFError
        raise CheckError("protocol", f"FTP login exchange failed: {str(e)[:100]}") from None
    finally:
        ftp_close(ftp)


# ------------------------------------------------------------------ VNC

VNC_BUDGET = 8.0           # seconds for one opening, challenge and result
MAX_VNC_BYTES = 4096


def vnc_session(ctx: CheckContext):
    """A connection through its RFB opening (no VeNCrypt): (socket, bounded read, Hello)."""
    sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
    sock.settimeout(None)
    bounded = BoundedSocket(sock, seconds=min(VNC_BUDGET, ctx.remaining()), max_bytes=MAX_VNC_BYTES,
                            what="VNC login")

    def read(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = bounded.recv(n - len(buf))
            if not chunk:
                raise RfbError("protocol", "connection closed by the server")
            buf += chunk
        return buf

    try:
        return sock, read, handshake(read, sock.sendall, vencrypt=False)
    except BaseException:
        sock.close()
        raise


def vnc_offers_password(ctx: CheckContext) -> list[int]:
    """The security types (one opening, no authentication): does this server ask for a classic VNC password?"""
    try:
        sock, _read, hello = vnc_session(ctx)
    except RfbError as e:
        raise CheckError(e.reason, f"VNC opening: {e.detail}") from None
    except OSError as e:     # BudgetExceeded included: a slow or flooding server
        raise CheckError(getattr(e, "reason", "protocol"), f"VNC opening: {getattr(e, 'detail', e)}") from None
    sock.close()
    return hello.types


def vnc_login(ctx: CheckContext, _user: str, password: str) -> tuple[bool, str]:
    """Classic VNC authentication with one password (VNC has no user name), on its own connection."""
    try:
        sock, read, hello = vnc_session(ctx)
        try:
            return vnc_auth(read, sock.sendall, hello, password)
        finally:
            sock.close()
    except RfbError as e:
        if "closed" in e.detail:   # TigerVNC hangs up on a blacklisted address: no more tries from here
            raise Refused(f"VNC server closed the connection: {e.detail}") from None
        raise CheckError(e.reason, f"VNC login: {e.detail}") from None
    except OSError as e:
        raise CheckError(getattr(e, "reason", "protocol"), f"VNC login: {getattr(e, 'detail', e)}") from None


# ------------------------------------------------------------------ HTTP Basic

def basic_realm(resp: web.Response) -> str:
    """The Basic realm a 401 asks for, or '' when the answer is not an HTTP Basic challenge."""
    if resp.status != 401:
        return ""
    for c in parse_www_authenticate(resp.head.get_all("www-authenticate")):
        if c["scheme"].lower() == "basic":
            return (c["realm"] or "(no realm)")[:80]
    return ""


def http_basic_login(ctx: CheckContext, origin: web.Origin, user: str, password: str, path: str = "/"
                     ) -> tuple[bool, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    resp = web.request(ctx, origin, "GET", path, headers={"Authorization": "Basic " + token})
    return 200 <= resp.status < 400, f"HTTP {resp.status}"


# ------------------------------------------------------------------ databases

def mysql_login(ctx: CheckContext, user: str, password: str) -> tuple[bool, str]:
    import pymysql  # noqa: PLC0415

    # PyMySQL reads whatever packet length the server announces (up to 16 MiB, then the next), each read
    # with a timeout that every byte restarts: bounded here in time and bytes (a login is a few hundred bytes)
    sock = BoundedSocket(ctx.connect(timeout=IO_TIMEOUT), seconds=min(IO_TIMEOUT * 2, ctx.remaining()),
                         max_bytes=MAX_DB_LOGIN_BYTES, what="MySQL login")
    conn = pymysql.connections.Connection(host=ctx.address, port=ctx.port or 3306, user=user, password=password,
                                          defer_connect=True, connect_timeout=IO_TIMEOUT,
                                          read_timeout=IO_TIMEOUT, write_timeout=IO_TIMEOUT)
    try:
        conn.connect(sock=sock)
        return True, "login accepted"
    except pymysql.err.OperationalError as e:
        sock.raise_if_exceeded()
        code = e.args[0] if e.args else 0
        if code == 1045:
            return False, "access denied"
        if code in (1129, 1130):
            raise Refused(f"server refuses this client before login (error {code})") from None
        raise CheckError("protocol", f"MySQL error {code}: {str(e.args[-1])[:100]}") from None
    except pymysql.err.MySQLError as e:
        sock.raise_if_exceeded()
        raise CheckError("protocol", f"MySQL login failed: {str(e)[:100]}") from None
    finally:
        try:
            conn.close()
        except Exception:   # closing a half-open connection may raise; the socket goes anyway
            sock.close()


def postgresql_login(ctx: CheckContext, user: str, password: str) -> tuple[bool, str]:
    import pg8000.native  # noqa: PLC0415

    sock = ctx.connect(timeout=IO_TIMEOUT)
    try:
        conn = pg8000.native.Connection(user, host=ctx.address, port=ctx.port or 5432, password=password,
                                        database="postgres", sock=sock, timeout=IO_TIMEOUT,
                                        application_name="tcmscan")
        conn.close()
        return True, "login accepted"
    except pg8000.exceptions.DatabaseError as e:
        info = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
        code, msg = info.get("C", ""), str(info.get("M", e))[:100]
        if code in ("28P01", "28000") and "pg_hba" not in msg:
            return False, "authentication failed"
        if code == "28000":
            raise Refused(f"pg_hba.conf refuses this client: {msg}") from None
        raise CheckError("protocol", f"PostgreSQL error {code}: {msg}") from None
    except pg8000.exceptions.InterfaceError as e:
        raise CheckError("protocol", f"PostgreSQL login failed: {str(e)[:100]}") from None
    finally:
        sock.close()
