"""impacket's SMBConnection on a connection of ours: opened by `ctx.connect` (scope, safe-mode pacing, device
health) and read through a BoundedSocket (one deadline, a byte budget), so a peer that drips, floods or announces
16 MiB messages ends the attempt with a reason instead of holding it.

impacket (SecureAuth/Fortra, maintained since 2003) speaks SMB1 and SMB2/3, NTLMSSP and DCE/RPC over named pipes:
everything an unauthenticated share survey needs (negotiate, anonymous or guest session setup, srvsvc
NetrShareEnum, tree connect, directory query). smbprotocol has no SMB1 and no share enumeration.
"""

from __future__ import annotations

import logging
import secrets

from impacket import nmb, smb
from impacket.smb3 import SessionError as Smb3SessionError
from impacket.smbconnection import SessionError, SMBConnection

from scanner.sdk import CheckContext, CheckError
from scanner.sdk.bounded import BoundedSocket

SESSION_SECONDS = 20.0            # negotiate, session setup, share list and a few directory listings
SESSION_BYTES = 16 << 20          # a directory of ~100 000 names; more and the attempt says so
OUR_NAME = "TCMSCAN"              # never our host name (impacket would send socket.gethostname())

# impacket logs protocol noise at error level on some paths; the engine collects what it says per attempt.
logging.getLogger("impacket").setLevel(logging.CRITICAL)


class _Connection(SMBConnection):
    """SMBConnection whose one negotiation runs on the socket we hand it (impacket would open its own and
    retry once)."""

    def __init__(self, sock: BoundedSocket, address: str, timeout: float) -> None:
        self._our_sock = sock
        super().__init__("*SMBSERVER", address, myName=OUR_NAME, sess_port=445, timeout=max(1, int(timeout)),
                         manualNegotiate=True)
        self.negotiateSession()

    def negotiateSessionWildcard(self, myName, remoteName, remoteHost, sess_port, timeout,  # noqa: N803
                                 extended_security=True, flags1=0, flags2=0, data=None) -> bytes:
        p = smb.NewSMBPacket()
        p["Flags1"] = flags1
        p["Flags2"] = flags2 | smb.SMB.FLAGS2_UNICODE | (smb.SMB.FLAGS2_EXTENDED_SECURITY if extended_security else 0)
        self._nmbSession = nmb.NetBIOSTCPSession(OUR_NAME, remoteName, remoteHost, nmb.TYPE_SERVER, sess_port,
                                                 timeout, sock=self._our_sock)
        cmd = smb.SMBCommand(smb.SMB.SMB_COM_NEGOTIATE)
        cmd["Data"] = data
        p.addCommand(cmd)
        self._nmbSession.send_packet(p.getData())
        return self._nmbSession.recv_packet(timeout).get_trailer()


class Session:
    """One SMB connection and (after `login`) one session on it."""

    def __init__(self, ctx: CheckContext) -> None:
        sock = ctx.connect(timeout=min(5.0, ctx.remaining()))
        self.bounded = BoundedSocket(sock, seconds=min(SESSION_SECONDS, ctx.remaining()), max_bytes=SESSION_BYTES,
                                     what="SMB session")
        self.conn: _Connection | None = None
        try:
            self.conn = _Connection(self.bounded, ctx.address, timeout=min(SESSION_SECONDS, ctx.remaining()))
        except Exception as e:  # noqa: BLE001 - any failure of the library on peer data is the peer's
            self.close()
            raise self.failure(e, "negotiate") from None

    def failure(self, e: BaseException, step: str) -> CheckError:
        """What a library exception means: the budget ran out, or the peer broke the protocol."""
        if self.bounded.exceeded is not None:
            return CheckError(self.bounded.exceeded.reason, self.bounded.exceeded.detail)
        if isinstance(e, nmb.NetBIOSTimeout):
            return CheckError("timeout", f"SMB {step}: no answer in time")
        return CheckError("protocol", f"SMB {step}: {type(e).__name__}: {str(e)[:160]}")

    def login(self, kind: str) -> bool:
        """`kind` "null" (empty user and password) or "guest" (a random user that exists nowhere, empty
        password: what "map to guest = Bad User" and Windows' guest account admit). True if a session was
        set up. Never retried."""
        assert self.conn is not None
        user = "" if kind == "null" else f"tcmscan-{secrets.token_hex(4)}"
        try:
            self.conn.login(user, "")
        except (SessionError, Smb3SessionError, smb.SessionError) as e:   # the server said no
            if self.bounded.exceeded is not None:
                raise self.failure(e, "session setup") from None
            return False
        except Exception as e:  # noqa: BLE001
            raise self.failure(e, "session setup") from None
        server = self.conn._SMBConnection
        if getattr(server, "_Session", None) is not None and (user == "" or self.conn.isGuestSession()):
            # MS-SMB2 3.2.5.3.1: a guest or anonymous session is never signed (there is no shared key).
            # impacket signs whenever the dialect is 3.1.1, and the server then refuses every request.
            server._Session["SigningActivated"] = False
        return True

    def names(self) -> dict[str, str]:
        """What the server said about itself in its NTLM challenge (smb-os-discovery reads the same)."""
        assert self.conn is not None
        c = self.conn
        os_name = c.getServerOS() or ""
        return {"netbios_name": c.getServerName() or "", "netbios_domain": c.getServerDomain() or "",
                "dns_name": c.getServerDNSHostName() or "", "dns_domain": c.getServerDNSDomainName() or "",
                "os": os_name.strip()}

    def close(self) -> None:
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:  # noqa: BLE001 - closing a connection the peer broke
            pass
        try:
            self.bounded.close()
        except OSError:
            pass

