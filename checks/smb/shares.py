"""smb.shares: does an SMB server open a session to anyone (null session, guest), which shares does that session
list and read, and what does the server say it is (NetBIOS/DNS names, OS version from its NTLM challenge).

Two connections: a null session (empty user and password), then a guest session (a random user name that exists
nowhere, empty password). Each is tried once, never retried. With a session, srvsvc NetrShareEnum lists the
shares and each disk share's top directory is listed once: names are counted, never opened, never read; nothing
is written. Facts only; data.smb.guest-share-readable and accounts.smb.anonymous-share-list judge.
Observation key `shares` (docs/checks/smb.md):
    null_session, guest_session: bool       -- a session was set up
    server: {netbios_name, netbios_domain, dns_name, dns_domain, os}
    listed_by: "null" | "guest" | null     -- the session whose NetrShareEnum answered
    shares: [{name, type: disk|printer|device|ipc, special: bool, remark, readable_by: [null|guest],
              files: int | null, folders: int | null}]   -- counts of the top directory, null when unreadable
    truncated: bool                        -- more than MAX_SHARES shares (the rest not listed)
"""

from __future__ import annotations

from checks.smb._session import Session
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="smb.shares",
    version="1.0",
    title_zh="SMB匿名/来宾会话与可读共享",
    title_en="SMB null and guest sessions and the shares they read",
    granularity="service",
    services=("microsoft-ds",),
    ports=(445,),
    # A session setup is a login (if an anonymous one): not on fragile/medical assets unless the inventory
    # says the device is known to take it.
    intrusive=True,
    safe_mode_opt_in="smb_session_allowed",
    timeout=60.0,
    description="Null session, then guest session (random user, empty password), each once; srvsvc NetrShareEnum; "
                "one directory listing of each disk share's top folder (names counted, never read).",
)
MAX_SHARES = 64          # shares listed per server; a file server with more is rare, and the finding is made
SHARE_TYPES = {0: "disk", 1: "printer", 2: "device", 3: "ipc"}
STYPE_SPECIAL = 0x80000000   # administrative shares (C$, ADMIN$, IPC$)


def _share_list(s: Session) -> list[dict] | None:
    """NetrShareEnum level 1 through the session, or None if the server refused it."""
    assert s.conn is not None
    try:
        raw = s.conn.listShares()
    except Exception as e:  # noqa: BLE001 - refused (access denied) or the peer broke the exchange
        if s.bounded.exceeded is not None:
            raise s.failure(e, "share list") from None
        return None
    out = []
    for item in raw[:MAX_SHARES + 1]:
        name = str(item["shi1_netname"]).rstrip("\x00")
        stype = int(item["shi1_type"])
        out.append({"name": name[:80], "type": SHARE_TYPES.get(stype & 0xFFFF, f"0x{stype & 0xFFFF:x}"),
                    "special": bool(stype & STYPE_SPECIAL), "remark": str(item["shi1_remark"]).rstrip("\x00")[:120],
                    "readable_by": [], "files": None, "folders": None})
    return out


def _count(s: Session, share: str) -> tuple[int, int] | None:
    """(files, folders) in the share's top directory, or None when the session may not list it."""
    assert s.conn is not None
    try:
        entries = s.conn.listPath(share, "*")
    except Exception as e:  # noqa: BLE001
        if s.bounded.exceeded is not None:
            raise s.failure(e, f"listing of {share}") from None
        return None
    names = [e for e in entries if e.get_longname() not in (".", "..")]
    folders = sum(1 for e in names if e.is_directory())
    return len(names) - folders, folders


def run(ctx: CheckContext) -> list[Observation]:
    data: dict = {"null_session": False, "guest_session": False, "server": {}, "listed_by": None, "shares": [],
                  "truncated": False}
    shares: list[dict] | None = None
    for kind in ("null", "guest"):
        s = Session(ctx)
        try:
            ok = s.login(kind)
            if not data["server"]:
                data["server"] = s.names()
            data[f"{kind}_session"] = ok
            if not ok:
                continue
            if shares is None:
                shares = _share_list(s)
                if shares is not None:
                    data["listed_by"] = kind
                    data["truncated"] = len(shares) > MAX_SHARES
                    shares = shares[:MAX_SHARES]
            for share in shares or []:
                if share["type"] != "disk":
                    continue
                counted = _count(s, share["name"])
                if counted is not None:
                    share["readable_by"].append(kind)
                    share["files"], share["folders"] = counted
        except CheckError:
            raise
        except Exception as e:  # noqa: BLE001 - any library failure on the peer's data
            raise s.failure(e, f"{kind} session") from None
        finally:
            s.close()
    data["shares"] = shares or []
    return [ctx.observation("shares", data)]
