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
              files: int | null, folders: int | null,   -- counts of the top directory, null when unreadable
              capped: bool}]                        -- counting stopped at MAX_ENTRIES names
    truncated: bool                        -- more than MAX_SHARES shares (the rest not listed)
"""

from __future__ import annotations

from impacket import smb
from impacket.smb3structs import (
    FILE_DIRECTORY_FILE,
    FILE_FULL_DIRECTORY_INFORMATION,
    FILE_OPEN,
    FILE_READ_ATTRIBUTES,
    FILE_READ_DATA,
    FILE_SHARE_DELETE,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_SYNCHRONOUS_IO_NONALERT,
)

from checks.smb._session import Session
from checks.smb._wire import WireError, directory_entries
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
MAX_ENTRIES = 10000      # names counted per share's top folder (a few hundred KiB of answers), then `capped`
STATUS_NO_MORE_FILES = 0x80000006
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
                    "readable_by": [], "files": None, "folders": None, "capped": False})
    return out


def _count(s: Session, share: str) -> tuple[int, int, bool] | None:
    """(files, folders, capped) in the share's top directory, or None when the session may not list it."""
    assert s.conn is not None
    try:
        if s.conn.getDialect() == smb.SMB_DIALECT:
            # SMB1-only servers (old devices, small shares): impacket's listing, under the session's byte budget
            entries = [(e.get_longname(), e.is_directory()) for e in s.conn.listPath(share, "*")]
            capped = False
        else:
            entries, capped = _list_top(s, share)
    except WireError as e:
        raise CheckError(e.reason, f"listing of {share}: {e.detail}") from None
    except Exception as e:  # noqa: BLE001 - refused (access denied), or the peer broke the exchange
        if s.bounded.exceeded is not None:
            raise s.failure(e, f"listing of {share}") from None
        return None
    names = [(n, d) for n, d in entries if n not in (".", "..")]
    folders = sum(1 for _n, d in names if d)
    return len(names) - folders, folders, capped


def _list_top(s: Session, share: str) -> tuple[list[tuple[str, bool]], bool]:
    """The share's top folder through SMB2/3 QUERY_DIRECTORY, stopping at MAX_ENTRIES (impacket's listPath would
    read a folder of any size into memory). The folder is opened for listing only and closed."""
    assert s.conn is not None
    c = s.conn._SMBConnection
    tree = c.connectTree(share)
    fid = None
    out: list[tuple[str, bool]] = []
    capped = False
    try:
        fid = c.create(tree, "", FILE_READ_ATTRIBUTES | FILE_READ_DATA,
                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                       FILE_DIRECTORY_FILE | FILE_SYNCHRONOUS_IO_NONALERT, FILE_OPEN, 0)
        while True:
            try:
                raw = c.queryDirectory(tree, fid, "*", maxBufferSize=65535,
                                       informationClass=FILE_FULL_DIRECTORY_INFORMATION)
            except Exception as e:  # noqa: BLE001
                if getattr(e, "get_error_code", lambda: None)() == STATUS_NO_MORE_FILES:
                    break
                raise
            out.extend(e for e in directory_entries(raw) if e[0] not in (".", ".."))
            if len(out) >= MAX_ENTRIES:
                out, capped = out[:MAX_ENTRIES], True
                break
    finally:
        try:
            if fid is not None:
                c.close(tree, fid)
            c.disconnectTree(tree)
        except Exception:  # noqa: BLE001 - the peer may already have broken the session
            pass
    return out, capped


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
                    share["files"], share["folders"], share["capped"] = counted
        except CheckError:
            raise
        except Exception as e:  # noqa: BLE001 - any library failure on the peer's data
            raise s.failure(e, f"{kind} session") from None
        finally:
            s.close()
    data["shares"] = shares or []
    return [ctx.observation("shares", data)]
