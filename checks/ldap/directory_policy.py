"""ldap.directory-policy: an Active Directory (or Samba AD) domain's password and lockout policy and its accounts, read
with a read-only directory account from the credentials file (type `ldap`).

The password goes only over TLS: LDAPS (port 636, or the credential's `port`), the certificate verified against
the credential's `ca_file` or the scan's `--ca-file`. Without either, the check says so and sends nothing, unless
the credential sets `insecure_tls: true` (an unverified certificate: a man in the middle could read the password).
One simple bind, never retried (no lockout); then reads only: the domain object, the Domain Admins and Enterprise
Admins groups' direct members (and Protected Users', to say which
admins are in it), and every user account (paged, at most MAX_ACCOUNTS). Facts only; the rules
accounts.ad.* judge them against the baseline's thresholds.
Observation key `policy` (docs/checks/ldap.md#ldapdirectory-policy):
    domain, password_policy {min_length, complexity, history, max_age_days (null: never), min_age_days},
    lockout_policy {threshold (0: never locks), duration_minutes (null: until an administrator unlocks),
                    window_minutes},
    domain_admins, enterprise_admins: [sAMAccountName], accounts: [{name, enabled, password_never_expires,
    password_not_required, last_logon (ISO | null), created (ISO | null)}], accounts_total, truncated,
    admin_accounts: [{name, groups, enabled, mail, exchange_mailbox, protected_users}]: every direct member of
    Domain Admins or Enterprise Admins, whether it has a mailbox (a `mail` address, an Exchange mailbox GUID) and
    whether it is a direct member of Protected Users (-525). accounts.ad.admin-everyday-use reads this.
"""

from __future__ import annotations

import re
import ssl
import struct
from datetime import UTC, datetime, timedelta

from ldap3 import BASE, SUBTREE

from checks.ldap._session import Session
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, Observation, Service

META = CheckMeta(
    id="ldap.directory-policy",
    version="1.1",
    title_zh="域密码与锁定策略、账户状态（只读目录账户）",
    title_en="Domain password and lockout policy and account state (read-only directory account)",
    granularity="service",
    services=("ldap", "ldaps"),
    ports=(389, 636),
    needs_credentials="ldap",
    timeout=120.0,
    description="LDAPS simple bind with the credentials file's read-only account (once), then reads: domain object, "
                "Domain/Enterprise Admins members, user accounts (paged).",
)
LDAPS_PORT = 636
MAX_ACCOUNTS = 20000
PAGE = 500
SESSION_SECONDS = 90.0
SESSION_BYTES = 64 << 20        # 20 000 accounts with six short attributes each, with room
UAC_DISABLED, UAC_PASSWD_NOTREQD, UAC_DONT_EXPIRE = 0x2, 0x20, 0x10000
NEVER = -0x8000000000000000     # AD's "never" for an interval
POLICY_ATTRS = ["minPwdLength", "pwdProperties", "pwdHistoryLength", "maxPwdAge", "minPwdAge", "lockoutThreshold",
                "lockoutDuration", "lockOutObservationWindow", "objectSid"]
USER_ATTRS = ["sAMAccountName", "userAccountControl", "lastLogonTimestamp", "whenCreated"]
MEMBER_ATTRS = ["sAMAccountName", "userAccountControl", "mail", "msExchMailboxGuid"]
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def applies(asset: Asset, service: Service | None) -> bool:
    """One attempt per directory: on 389 when the host has it (the bind itself goes to LDAPS), else on 636."""
    if service is None:
        return False
    ports = {s.port for s in asset.services}
    return service.port == 389 or (service.port == LDAPS_PORT and 389 not in ports)


# -- values ------------------------------------------------------------------------------------------------------
_INTEGER = re.compile(r"-?[0-9]{1,20}")     # ASCII digits only (str.isdigit() also takes '¹', which int() refuses)


def integer(raw: str | None) -> int | None:
    return int(raw) if raw is not None and _INTEGER.fullmatch(raw) else None


def interval_seconds(raw: str | None) -> float | None:
    """An AD interval (negative 100 ns units) in seconds; None for 'never' (0 or the minimum int64)."""
    v = integer(raw)
    if v is None or v in (0, NEVER):
        return None
    return abs(v) / 10_000_000


def interval_days(raw: str | None) -> float | None:
    s = interval_seconds(raw)
    return None if s is None else round(s / 86400, 4)


def interval_minutes(raw: str | None) -> float | None:
    s = interval_seconds(raw)
    return None if s is None else round(s / 60, 2)


def filetime_iso(raw: str | None) -> str | None:
    """lastLogonTimestamp (FILETIME) as ISO-8601 UTC; None when never (0) or out of range."""
    v = integer(raw)
    if v is None or v <= 0:
        return None
    try:
        t = _FILETIME_EPOCH + timedelta(microseconds=v // 10)
    except OverflowError:
        return None
    return t.isoformat(timespec="seconds").replace("+00:00", "Z") if 1980 <= t.year <= 9000 else None


def generalized_iso(raw: str | None) -> str | None:
    """whenCreated ('20261203123100.0Z') as ISO-8601 UTC."""
    if not raw or not re.fullmatch(r"[0-9]{14}", raw[:14]):
        return None
    try:
        t = datetime.strptime(raw[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def sid_string(raw: bytes) -> str:
    """A binary SID (MS-DTYP 2.4.2.2) as S-1-…; ValueError when malformed."""
    if len(raw) < 8 or raw[0] != 1 or len(raw) != 8 + 4 * raw[1]:
        raise ValueError("malformed SID")
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{raw[1]}I", raw[8:])
    return "S-1-" + "-".join(str(x) for x in (authority, *subs))


# -- reads --------------------------------------------------------------------------------------------------------
def _tls(ctx: CheckContext, cred) -> ssl.SSLContext:
    ca = cred.extra.get("ca_file") or ctx.options.get("tls_ca_file")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.check_hostname = False      # scanned by address; the chain is what is verified
    if ca:
        tls.load_verify_locations(cafile=str(ca))
    elif cred.extra.get("insecure_tls") is True:
        tls.verify_mode = ssl.CERT_NONE
    else:
        raise CheckError("unsupported", "no CA to verify the directory's LDAPS certificate (credential ca_file or "
                                        "--ca-file): the password was not sent")
    return tls


def _raw(entry: dict, name: str) -> list[bytes]:
    for k, v in (entry.get("raw_attributes") or {}).items():
        if k.lower() == name.lower():
            return list(v)
    return []


def _text(entry: dict, name: str) -> str | None:
    v = _raw(entry, name)
    return v[0].decode("utf-8", "replace") if v else None


def _entries(s: Session) -> list[dict]:
    return [r for r in s.conn.response or [] if r.get("type") == "searchResEntry"]


def _members(s: Session, sid: str) -> list[dict]:
    """The direct members of the group with this SID: sAMAccountName (the DN when unreadable), enabled, and whether
    a mailbox is attached (`mail`, Exchange's msExchMailboxGuid: present or not, the address is not kept)."""
    s.call("group", s.conn.search, s.base, f"(objectSid={sid})", search_scope=SUBTREE, attributes=["member"])
    groups = _entries(s)
    if not groups:
        return []
    members = []
    for dn in [m.decode("utf-8", "replace") for m in _raw(groups[0], "member")][:1000]:
        s.call("member", s.conn.search, dn, "(objectClass=*)", search_scope=BASE, attributes=MEMBER_ATTRS)
        got = _entries(s)
        e = got[0] if got else {}
        uac = integer(_text(e, "userAccountControl")) if e else None
        members.append({"name": ((_text(e, "sAMAccountName") if e else None) or dn)[:200],
                        "enabled": None if uac is None else not uac & UAC_DISABLED,
                        "mail": bool(e and _raw(e, "mail")),
                        "exchange_mailbox": bool(e and _raw(e, "msExchMailboxGuid"))})
    return sorted(members, key=lambda m: m["name"].lower())


def admin_accounts(domain_admins: list[dict], enterprise_admins: list[dict], protected: list[dict]) -> list[dict]:
    """One entry per direct Domain Admins / Enterprise Admins member, with the groups that make it an admin."""
    protected_names = {m["name"] for m in protected}
    out: dict[str, dict] = {}
    for group, members in (("Domain Admins", domain_admins), ("Enterprise Admins", enterprise_admins)):
        for m in members:
            a = out.setdefault(m["name"], {**m, "groups": [], "protected_users": m["name"] in protected_names})
            a["groups"].append(group)
    return sorted(out.values(), key=lambda a: a["name"].lower())


def run(ctx: CheckContext) -> list[Observation]:
    cred = ctx.credential("ldap")
    if cred is None or not cred.user or cred.password is None:
        raise CheckError("no-credentials", "no ldap credential (user and password) for this address")
    tls = _tls(ctx, cred)
    s = Session(ctx, port=cred.port or LDAPS_PORT, tls=tls, seconds=SESSION_SECONDS, max_bytes=SESSION_BYTES)
    try:
        s.conn.user, s.conn.password, s.conn.authentication = cred.user, cred.password, "SIMPLE"
        if not s.call("bind", s.conn.bind):
            r = s.conn.result or {}
            raise CheckError("auth", f"directory refused the bind: {r.get('result')} {r.get('description', '')}")
        s.call("root DSE", s.conn.search, "", "(objectClass=*)", search_scope=BASE,
               attributes=["defaultNamingContext"])
        root = _entries(s)
        s.base = (_text(root[0], "defaultNamingContext") if root else None) or ""
        if not s.base:
            raise CheckError("unsupported", "no defaultNamingContext: not an Active Directory domain controller")
        s.call("domain", s.conn.search, s.base, "(objectClass=*)", search_scope=BASE, attributes=POLICY_ATTRS)
        dom = _entries(s)
        if not dom or not _raw(dom[0], "objectSid"):
            raise CheckError("unsupported", f"{s.base} has no domain policy attributes (objectSid)")
        d = dom[0]
        try:
            domain_sid = sid_string(_raw(d, "objectSid")[0])
        except ValueError:
            raise CheckError("protocol", "malformed objectSid on the domain object") from None

        def num(name: str) -> int | None:
            return integer(_text(d, name))

        password_policy = {"min_length": num("minPwdLength"), "complexity": bool((num("pwdProperties") or 0) & 1),
                           "history": num("pwdHistoryLength"), "max_age_days": interval_days(_text(d, "maxPwdAge")),
                           "min_age_days": interval_days(_text(d, "minPwdAge"))}
        lockout_policy = {"threshold": num("lockoutThreshold"),
                          "duration_minutes": interval_minutes(_text(d, "lockoutDuration")),
                          "window_minutes": interval_minutes(_text(d, "lockOutObservationWindow"))}
        domain_admins = _members(s, f"{domain_sid}-512")
        enterprise_admins = _members(s, f"{domain_sid}-519")
        protected_users = _members(s, f"{domain_sid}-525")

        accounts, total, cookie = [], 0, None
        while True:
            s.call("accounts", s.conn.search, s.base, "(&(objectCategory=person)(objectClass=user))",
                   search_scope=SUBTREE, attributes=USER_ATTRS, paged_size=PAGE, paged_cookie=cookie)
            for e in _entries(s):
                total += 1
                uac = integer(_text(e, "userAccountControl")) or 0
                if len(accounts) < MAX_ACCOUNTS:
                    accounts.append({"name": (_text(e, "sAMAccountName") or "")[:64],
                                     "enabled": not uac & UAC_DISABLED,
                                     "password_never_expires": bool(uac & UAC_DONT_EXPIRE),
                                     "password_not_required": bool(uac & UAC_PASSWD_NOTREQD),
                                     "last_logon": filetime_iso(_text(e, "lastLogonTimestamp")),
                                     "created": generalized_iso(_text(e, "whenCreated"))})
            ctrl = ((s.conn.result or {}).get("controls") or {}).get("1.2.840.113556.1.4.319") or {}
            cookie = (ctrl.get("value") or {}).get("cookie")
            if not cookie or total >= MAX_ACCOUNTS:
                break
    finally:
        s.close()
    accounts.sort(key=lambda a: a["name"].lower())
    return [ctx.observation("policy", {
        "domain": s.base, "password_policy": password_policy, "lockout_policy": lockout_policy,
        "domain_admins": [m["name"] for m in domain_admins],
        "enterprise_admins": [m["name"] for m in enterprise_admins],
        "admin_accounts": admin_accounts(domain_admins, enterprise_admins, protected_users),
        "accounts": accounts, "accounts_total": total, "truncated": total > len(accounts) or bool(cookie),
    })]
