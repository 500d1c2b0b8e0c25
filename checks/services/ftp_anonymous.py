"""services.ftp-anonymous: does the FTP server accept the documented anonymous login (USER anonymous)?

One login, then QUIT: no listing, no download. Anonymous FTP is a read-only login the protocol documents
(RFC 1635), but it is still a login, so on fragile/medical assets it runs only when the inventory entry
says `default_credentials_allowed: true` (META.intrusive + safe_mode_opt_in; the planner decides).
Observation key `anonymous`: {accepted, code, reply, banner}.
"""

from __future__ import annotations

import ftplib

from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation
from scanner.sdk.ftp import close, ftp_session, try_login

META = CheckMeta(
    id="services.ftp-anonymous",
    version="1.0",
    title_zh="FTP匿名登录",
    title_en="Anonymous FTP login",
    granularity="service",
    services=("ftp",),
    ports=(21,),
    intrusive=True,
    safe_mode_opt_in="default_credentials_allowed",
    capabilities=("AUTH",),
    timeout=20.0,
    description="USER anonymous / PASS <probe address>, records 230 (accepted) or 530; lists nothing.",
)
PROBE_ADDRESS = "tcmscan-probe@example.invalid"   # RFC 1635 asks for an e-mail address as the password


def run(ctx: CheckContext) -> list[Observation]:
    ftp, welcome = ftp_session(ctx)
    try:
        try:
            accepted, reply = try_login(ftp, "anonymous", PROBE_ADDRESS)
        except (ftplib.Error, EOFError, OSError, UnicodeDecodeError) as e:   # a reply that is not UTF-8
            raise CheckError("protocol", f"FTP login exchange failed: {str(e)[:100]}") from None
    finally:
        close(ftp)
    code = int(reply[:3]) if reply[:3].isdecimal() else None     # "5\u00b2\u00b2" passes isdigit(), not int()
    return [ctx.observation("anonymous", {"accepted": accepted, "code": code, "reply": reply[:120],
                                          "banner": welcome[:120]})]
