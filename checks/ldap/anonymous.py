"""ldap.anonymous: what a directory (OpenLDAP, Active Directory, Samba AD) gives anyone who asks without a password,
and whether it takes a password in clear.

On one cleartext connection: an explicit anonymous bind; the root DSE (naming contexts, vendor, LDAP versions, SASL
mechanisms, StartTLS offered, AD's functional levels); per naming context, whether its entry is readable and how
many person/user entries an anonymous subtree search returns (DNs only, no attribute, at most MAX_USERS); last, one
simple bind as `cn=tcmscan-probe-<hex>,<naming context>` with a random password: an entry that does not exist, so
no account is locked, and the answer says whether the server processes passwords sent in clear
(invalidCredentials) or refuses them without TLS (confidentialityRequired, strongerAuthRequired: AD's "LDAP server
signing requirements = Require signing", OpenLDAP's `security simple_bind=`). Never retried, nothing written.
Then one more bind on the same connection: an anonymous NTLM logon through SASL GSS-SPNEGO (RFC 4178) that does
not negotiate signing (no NTLMSSP_NEGOTIATE_SIGN, no password, no name): a server that requires LDAP signing
refuses it with strongerAuthRequired, one that does not accepts it (an anonymous session). With the simple-bind
answer this gives `ldap_signing` on a domain controller: "Require signing" (LDAPServerIntegrity=2; Samba: ldap
server require strong auth = yes) refuses unsigned SASL binds and simple binds without TLS. Facts only;
data.ldap.anonymous-read, crypto.ldap.cleartext-bind and crypto.ldap.signing-not-required judge.
Observation key `directory` (docs/checks/ldap.md).
"""

from __future__ import annotations

import re
import secrets

from impacket.ntlm import getNTLMSSPType1, getNTLMSSPType3
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp, TypesMech
from ldap3 import BASE, SUBTREE
from ldap3.protocol.sasl.sasl import send_sasl_negotiation

from checks.ldap._session import Session
from scanner.sdk import CheckContext, CheckError, CheckMeta, Observation

META = CheckMeta(
    id="ldap.anonymous",
    version="1.1",
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
                "counted), one simple bind as a non-existent entry with a random password, one anonymous NTLM "
                "SASL bind without signing.",
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


SUCCESS = 0
SASL_BIND_IN_PROGRESS = 14


def ldap_signing(root: dict, probe_result: int, sasl_result: int | None) -> dict:
    """Whether a domain controller requires LDAP signing: from the unsigned SASL bind when it answered 0 or 8, else
    from the cleartext simple-bind probe.

    Microsoft ("Domain controller: LDAP server signing requirements"): with Require signing the DC rejects SASL
    binds that do not request signing and "LDAP simple binds not using SSL/TLS" (strongerAuthRequired, "The server
    requires binds to turn on integrity checking"); with None both are processed (the anonymous NTLM bind
    succeeds, the made-up simple bind gets invalidCredentials). Samba's `ldap server require strong auth = yes`
    answers the same ("SASL:[GSS-SPNEGO]: Sign or Seal are required."). Only judged on a domain controller (the
    root DSE publishes domainControllerFunctionality): on OpenLDAP a refusal means `security simple_bind`, not
    signing. Any other pair of answers says nothing: null.
    """
    dc = bool(root.get("readable") and root.get("domain_controller"))
    required, basis = None, ""
    if dc and sasl_result in (SUCCESS, STRONGER_AUTH_REQUIRED):
        required, basis = sasl_result == STRONGER_AUTH_REQUIRED, "unsigned SASL bind"
    elif dc and probe_result in (INVALID_CREDENTIALS, STRONGER_AUTH_REQUIRED):
        required, basis = probe_result == STRONGER_AUTH_REQUIRED, "cleartext simple bind"
    return {"domain_controller": dc, "required": required, "basis": basis}


def _sasl_leg(s: Session, payload: bytes) -> dict:
    s.call("unsigned SASL bind", send_sasl_negotiation, s.conn, None, payload)
    r = s.conn.result or {}
    return {**_result(s), "creds": r.get("saslCreds") or b""}


def _unsigned_sasl_bind(s: Session) -> dict:
    """An anonymous NTLM logon through SASL GSS-SPNEGO without signing; its final LDAP result.

    Two binds on our connection (ldap3 sends them; impacket builds the NTLMSSP and SPNEGO tokens): NEGOTIATE
    without NTLMSSP_NEGOTIATE_SIGN/SEAL, then an anonymous AUTHENTICATE (empty name and responses: no secret is
    sent, no account is tried, nothing can lock). A broken exchange is recorded, not raised: the facts read before
    stay. `stage` says where it ended: mechanism (the first leg was refused), challenge (unreadable), bind (the
    final answer).
    """
    s.conn.sasl_mechanism = "GSS-SPNEGO"
    try:
        negotiate = getNTLMSSPType1("", "", signingRequired=False, use_ntlmv2=True)
        init = SPNEGO_NegTokenInit()
        init["MechTypes"] = [TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]]
        init["MechToken"] = negotiate.getData()
        first = _sasl_leg(s, init.getData())
        if first["result"] != SASL_BIND_IN_PROGRESS:
            return {**{k: v for k, v in first.items() if k != "creds"}, "stage": "mechanism"}
        try:
            challenge = SPNEGO_NegTokenResp(bytes(first["creds"]))["ResponseToken"]
            authenticate, _ = getNTLMSSPType3(negotiate, challenge, "", "", "", use_ntlmv2=True)
        except Exception:  # noqa: BLE001 - impacket's parsers on the peer's bytes
            return {"result": None, "description": "unreadable NTLM challenge", "message": "", "stage": "challenge"}
        resp = SPNEGO_NegTokenResp()
        resp["ResponseToken"] = authenticate.getData()
        final = _sasl_leg(s, resp.getData())
        return {**{k: v for k, v in final.items() if k != "creds"}, "stage": "bind"}
    except CheckError as e:
        return {"result": None, "description": e.reason, "message": e.detail[:160], "stage": "exchange"}


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
        sasl = _unsigned_sasl_bind(s)
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
        "unsigned_sasl_bind": {"accepted": sasl["result"] == SUCCESS, **sasl},
        "ldap_signing": ldap_signing(root, probe["result"], sasl["result"]),
    })]
