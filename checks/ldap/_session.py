"""ldap3 on a connection of ours: the socket comes from `ctx.connect` (scope, safe-mode pacing, device health) and
is read through a BoundedSocket (one deadline, a byte budget), so a server that drips, floods or announces a
gigabyte-long BER element ends the attempt with a reason instead of holding it.

ldap3 (pure Python, RFC 4510-4519, used by impacket's and many AD tools) is the library: strict BER, simple and
SASL binds, paged searches. Its SyncStrategy opens its own socket; `_Strategy` hands it ours instead.
"""

from __future__ import annotations

import logging
import ssl
import warnings

with warnings.catch_warnings():
    # ldap3 2.9.1 imports pyasn1's tagMap/typeMap, deprecated since pyasn1 0.6.1: noise on every import
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import NONE, Connection, Server
    from ldap3.strategy.sync import SyncStrategy

from scanner.sdk import CheckContext, CheckError
from scanner.sdk.bounded import BoundedSocket

SESSION_SECONDS = 20.0       # bind, root DSE, a few searches
SESSION_BYTES = 8 << 20      # a root DSE is < 10 KiB; a capped search of DNs alone well under 1 MiB

logging.getLogger("ldap3").setLevel(logging.CRITICAL)


class _Strategy(SyncStrategy):
    """SyncStrategy whose socket is the one we opened (ldap3 calls _open_socket from open())."""

    bounded: BoundedSocket | None = None

    def _open_socket(self, address, use_ssl=False, unix_socket=False):  # noqa: ARG002 - ldap3's signature
        self.connection.socket = self.bounded
        self.connection.closed = False


class Session:
    """One LDAP connection (not bound yet): cleartext on the service's port, or LDAPS on `port` with `tls`."""

    def __init__(self, ctx: CheckContext, *, port: int | None = None, tls: ssl.SSLContext | None = None,
                 seconds: float = SESSION_SECONDS, max_bytes: int = SESSION_BYTES) -> None:
        port = port or ctx.port or 389
        sock = ctx.connect(port, timeout=min(5.0, ctx.remaining()))
        if tls is not None:
            try:
                sock = ctx.wrap_tls(sock, tls)
            except (ssl.SSLError, OSError) as e:
                raise CheckError("protocol", f"LDAPS handshake with port {port}: {str(e)[:160]}") from None
        seconds = min(seconds, ctx.remaining())
        self.base = ""                       # the default naming context, once read
        self.bounded = BoundedSocket(sock, seconds=seconds, max_bytes=max_bytes, what="LDAP session")
        server = Server(ctx.address, port=port, get_info=NONE, connect_timeout=seconds)
        self.conn = Connection(server, auto_bind=False, receive_timeout=int(max(1, seconds)), raise_exceptions=False,
                               read_only=True, check_names=False)
        strategy = _Strategy(self.conn)
        strategy.bounded = self.bounded
        self.conn.strategy = strategy
        self.conn.send = strategy.send          # Connection maps these strategy methods at construction
        self.conn.open = strategy.open
        self.conn.get_response = strategy.get_response
        self.conn.post_send_single_response = strategy.post_send_single_response
        self.conn.post_send_search = strategy.post_send_search
        try:
            self.conn.open(read_server_info=False)
        except Exception as e:  # noqa: BLE001
            raise self.failure(e, "open") from None

    def failure(self, e: BaseException, step: str) -> CheckError:
        if self.bounded.exceeded is not None:
            return CheckError(self.bounded.exceeded.reason, self.bounded.exceeded.detail)
        if isinstance(e, TimeoutError) or "timed out" in str(e):
            return CheckError("timeout", f"LDAP {step}: no answer in time")
        return CheckError("protocol", f"LDAP {step}: {type(e).__name__}: {str(e)[:160]}")

    def call(self, step: str, fn, *args, **kw):
        """An ldap3 operation: its return value, or CheckError when the peer broke the exchange."""
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - LDAPException, pyasn1 decoding errors, ...: the peer's data
            raise self.failure(e, step) from None

    def close(self) -> None:
        try:
            self.conn.unbind()
        except Exception:  # noqa: BLE001 - closing a connection the peer may have broken
            pass
        try:
            self.bounded.close()
        except OSError:
            pass
