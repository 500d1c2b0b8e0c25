"""ldap.anonymous: what a directory (OpenLDAP, Active Directory, Samba AD) gives anyone who asks without a password,
and whether it takes a password in clear.

On one cleartext connection: an explicit anonymous bind; the root DSE (naming contexts, vendor, LDAP versions, SASL
mechanisms, StartTLS offered, AD's functional levels); per naming context, whether its entry is readable and how
many person/user entries an anonymous subtree search returns (DNs only, no attribute, at most MAX_USERS); last, one
simple bind as `cn=tcmscan-probe-<hex>,<naming context>` with a random password: an entry that does not exist, so
no account is locked, and the answer says whether the server processes passwords sent in clear
(invalidCredentials) or refuses them without TLS (confidentialityRequired, strongerAuthRequired: AD's "LDAP server
signing requirements = Require signing", OpenLDAP's `security simple_bind=`). Never retried, nothing written.
On a domain controller the same answer also tells whether LDAP signing is required (`ldap_signing`): with
"Require signing" (LDAPServerIntegrity=2; Samba: ldap server require strong auth = yes) AD refuses every simple
bind on a connection without TLS with strongerAuthRequired, so a processed bind (invalidCredentials) means signing
is not required. Facts only; data.ldap.anonymous-read, crypto.ldap.cleartext-bind and
crypto.ldap.signing-not-required judge.
Observation key `directory` (docs/checks/ldap.md).
"""

from __future__ import annotations

import re
import secrets

from ldap3 import BASE, SUBTREE

from checks.ldap._session import Session
from scanner.sdk import CheckContext, CheckMeta, Observation

META = CheckMeta(
    id="ldap.anonymous",
    version="1.0",
    title_zh="LDAP目录匿名访问与明文简单绑定",
    title_en="LDAP directory: anonymous access and cleartext simple bind",
    granularity="service",
    services=("ldap",),
    ports=(389,),
    # a bind with a made-up name is a failed login in the server's log: not on fragile assets unless allowed
    intrusive=True,
    safe_mode_opt_in="ldap_bind_allowed",
    timeout=40.0,
    description="Anonymous bind, root DSE, anonymous subtree search per naming context (DNs of person/user entries, "
                "counted), one simple bind as a non-existent entry with a random password.",
)
MAX_USERS = 1000              # AD's MaxPageSize: an unpaged search stops there anyway
MAX_CONTEXTS = 8
STARTTLS_OID = "1.3.6.1.4.1.1466.20037"
USER_FILTER = "(|(objectClass=person)(objectClass=user)(objectClass=inetOrgPerson)(objectClass=posixAccount))"
ROOT_ATTRIBUTES = ["namingContexts", "defaultNamingContext", "supportedLDAPVersion", "supportedSASLMechanisms",
                   "supportedExtension", "vendorName", "vendorVersion", "dnsHostName",
                   "domainControllerFunctionality", "domainFunctionality", "forestFunctionality",
                   "isGlobalCatalogReady"]
# strongerAuthRequired, confidentialityRequired, unwillingToPerform (simple binds off): RFC 4511 4.1.9, 4.2.2
REFUSED_IN_CLEAR = (8, 13, 53)
STRONGER_AUTH_REQUIRED, INVALID_CREDENTIALS = 8, 49


def ldap_signing(root: dict, probe_result: int) -> dict:
    """Whether a domain controller requires LDAP signing, read from the cleartext simple-bind probe.

    Microsoft ("Domain controller: LDAP server signing requirements"): with Require signing, "LDAP simple binds not
    using SSL/TLS are rejected" (strongerAuthRequired, "The server requires binds to turn on integrity checking");
    with None, a simple bind in clear is processed (invalidCredentials for our made-up entry). Samba's
    `ldap server require strong auth = yes` answers the same. Only judged on a domain controller (root DSE
    publishes domainControllerFunctionality): on OpenLDAP a refusal means `security simple_bind`, not signing.
    Any other answer (13, 53, a closed connection) says nothing: null.
    """
    dc = bool(root.get("readable") and root.get("domain_controller"))
    required = None
    if dc and probe_result == STRONGER_AUTH_REQUIRED:
        required = True
    elif dc and probe_result == INVALID_CREDENTIALS:
        required = False
    return {"domain_controller": dc, "required": required, "basis": "cleartext simple bind"}


def _result(s: Session) -> dict:
    r = s.conn.result or {}
    return {"result": int(r.get("result", -1)), "description": str(r.get("description", ""))[:60],
            "message": str(r.get("message", ""))[:160]}


def _values(attrs: dict, name: str) -> list[str]:
    v = attrs.get(name) or []
    return [str(x)[:200] for x in (v if isinstance(v, list) else [v])][:64]


def _int(attrs: dict, name: str) -> int | None:
    v = _values(attrs, name)
    # ASCII digits only: str.isdigit() also takes '¹', which int() refuses
    return int(v[0]) if v and re.fullmatch(r"-?[0-9]{1,12}", v[0]) else None


def _root_dse(s: Session) -> dict:
    s.call("root DSE", s.conn.search, "", "(objectClass=*)", search_scope=BASE, attributes=ROOT_ATTRIBUTES)
    entries = [r for r in (s.conn.response or []) if r.get("type") == "searchResEntry"]
    if not entries:
        return {"readable": False, **_result(s)}
    a = entries[0].get("raw_attributes") or {}
    attrs = {k: [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v] for k, v in a.items()}
    extensions = _values(attrs, "supportedExtension")
    return {
        "readable": True,
        "naming_contexts": _values(attrs, "namingContexts")[:MAX_CONTEXTS],
        "default_naming_context": (_values(attrs, "defaultNamingContext") or [""])[0],
        "ldap_versions": _values(attrs, "supportedLDAPVersion"),
        "sasl_mechanisms": _values(attrs, "supportedSASLMechanisms"),
        "starttls_offered": STARTTLS_OID in extensions,
        "vendor": (_values(attrs, "vendorName") or [""])[0],
        "vendor_version": (_values(attrs, "vendorVersion") or [""])[0],
        "dns_host_name": (_values(attrs, "dnsHostName") or [""])[0],
        # AD and Samba AD publish these on every domain controller; OpenLDAP does not
        "domain_controller": _int(attrs, "domainControllerFunctionality") is not None,
        "domain_functionality": _int(attrs, "domainFunctionality"),
    }


def _context(s: Session, dn: str) -> dict:
    s.call("search", s.conn.search, dn, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
    base_readable = any(r.get("type") == "searchResEntry" for r in s.conn.response or [])
    s.call("search", s.conn.search, dn, USER_FILTER, search_scope=SUBTREE, attributes=["1.1"],
           size_limit=MAX_USERS)
    r = _result(s)
    users = sum(1 for e in s.conn.response or [] if e.get("type") == "searchResEntry")
    ok = r["result"] in (0, 4)        # success, sizeLimitExceeded (entries up to the limit came back)
    return {"dn": dn, "base_readable": base_readable, "user_entries": users if ok else None,
            "capped": r["result"] == 4, "search_result": r["result"]}


def run(ctx: CheckContext) -> list[Observation]:
    s = Session(ctx)
    try:
        s.call("anonymous bind", s.conn.bind)
        anon = _result(s)
        root = _root_dse(s)
        contexts = [_context(s, dn) for dn in root.get("naming_contexts", [])]
        base = root.get("default_naming_context") or next(iter(root.get("naming_contexts", [])), "")
        probe_dn = f"cn=tcmscan-probe-{secrets.token_hex(4)}" + (f",{base}" if base else "")
        s.conn.user, s.conn.password = probe_dn, secrets.token_urlsafe(18)
        s.conn.authentication = "SIMPLE"
        s.call("simple bind", s.conn.bind)
        probe = _result(s)
    finally:
        s.close()
    counted = [c["user_entries"] for c in contexts if c["user_entries"] is not None]
    return [ctx.observation("directory", {
        "tls": False,
        "anonymous_bind": {"accepted": anon["result"] == 0, **anon},
        "root_dse": root,
        "naming_contexts": contexts,
        "user_entries": sum(counted) if counted else None,
        "cleartext_bind": {"refused": probe["result"] in REFUSED_IN_CLEAR, **probe, "dn": probe_dn},
        "ldap_signing": ldap_signing(root, probe["result"]),
    })]
