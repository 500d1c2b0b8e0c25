"""tls.scan: accepted protocol versions and cipher suites (handshake level), certificate, ShangMi support.

Facts only, one observation `versions` per TLS port:
    versions:  {SSLv2: [...], SSLv3: [...], TLSv1.0: [...], TLSv1.1: [...], TLSv1.2: [...], TLSv1.3: [...]}
               accepted IANA suite names per version, [] when refused (a public contract: `tcmscan
               observations --format json`); TLSv1.3 includes RFC 8998 suites when accepted
    shangmi:   {rfc8998: [...], tlcp: [...], sm2_certificate: bool}
    certificate: facts of the leaf and chain (certinfo.analyse), or null with `certificate_error`
    refused:   why each version stopped (alert name, "closed", ...): evidence for "not offered"
    offered / accepted: the versions with at least one suite / every accepted suite name (all versions, TLCP)
    starttls:  {protocol: smtp|ftp|imap|pop3|ldap|rdp, offered: true} on a STARTTLS port (absent on direct TLS ports)
On a STARTTLS port (SMTP 25/587, FTP 21, IMAP 143, POP3 110, LDAP 389, RDP 3389: baselines/knowledge/starttls.yaml)
every probe
connection first performs the protocol's upgrade (checks/tls/_starttls.py). A server that answers without
offering STARTTLS gives one observation `starttls` instead: {starttls: {protocol, offered: false, reply}}.
Rules in baselines/profiles/*/rules/crypto-tls.yaml judge them.

Options (ctx.options): tls_ca_file (extra trust anchors, also env TCMSCAN_TLS_CA_FILE), tls_sni (server name
to send), tls_parallel (concurrent connections, default 4; safe mode forces 1), tls_probe_timeout (seconds
one probe may take, default 5).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
import time

from checks.tls import _certinfo as certinfo
from checks.tls import _probe as P
from checks.tls import _starttls as starttls
from checks.tls._enumerate import Enumeration, enumerate_server
from checks.tls._suites import VERSIONS
from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service

DIRECT_SERVICES = ("https", "ssl", "dicom-tls", "ldaps", "imaps", "pop3s", "smtps", "ftps", "tls-shangmi")
DIRECT_PORTS = (443, 2762, 8443, 636, 993, 995, 465)

META = CheckMeta(
    id="tls.scan",
    version="1.1",
    title_zh="TLS协议版本、密码套件、证书与国密支持",
    title_en="TLS protocol versions, cipher suites, certificate and ShangMi support",
    granularity="service",
    services=DIRECT_SERVICES + starttls.services(),
    ports=DIRECT_PORTS + starttls.ports(),
    tls=True,
    capabilities=("TXCF", "TXIG"),
    timeout=30.0,
    description="Own ClientHello probes per version (SSLv2..TLS 1.3, RFC 8998, TLCP): offer all remaining "
                "suites, record the chosen one, repeat until refused. Certificate parsed with cryptography. "
                "SMTP, FTP, IMAP and POP3 are upgraded with STARTTLS on each probe connection first.",
)
PROBE_TIMEOUT = 5.0
DEFAULT_PARALLEL = 4


def _direct(service: Service) -> bool:
    return service.tunnel == "ssl" or service.name in DIRECT_SERVICES


def starttls_protocol(service: Service) -> str:
    """The STARTTLS protocol to perform before each ClientHello; empty for a direct (implicit) TLS port.
    A service name decides; the port number only when discovery could not name the service."""
    if service.tunnel == "ssl":
        return ""                 # implicit TLS (465, 990, 993, 995 ...) whatever nmap calls the service
    proto = starttls.protocol_for(service.name, service.port)
    if proto and service.name not in starttls.UNIDENTIFIED:
        return proto
    if _direct(service) or service.port in DIRECT_PORTS:
        return ""
    return proto


def applies(asset: Asset, service: Service | None) -> bool:
    """Every direct-TLS match is tried (a port that turns out not to be TLS is "not applicable"); a STARTTLS
    port number matches only when discovery named that service or could not name it (25 serving HTTP: no)."""
    if service is None or _direct(service) or service.port in DIRECT_PORTS:
        return True
    return bool(starttls.protocol_for(service.name, service.port))


def _sni(ctx: CheckContext) -> str:
    """A server name only when we have a DNS name (IP literals are not allowed in SNI, RFC 6066 3)."""
    name = str(ctx.options.get("tls_sni") or ctx.asset.name or "")
    try:
        ipaddress.ip_address(name)
        return ""
    except ValueError:
        return name if "." in name else ""


def _first_check(out: P.Outcome, where: str, proto: str) -> None:
    if out.kind == P.NOT_TLS:
        if proto:    # the server said "go ahead" and then did not speak TLS: broken, not "not TLS"
            raise CheckError("protocol", f"{where}: {proto} STARTTLS accepted, then no TLS answer: {out.detail}")
        raise CheckNotApplicable(f"{where} does not speak TLS: {out.detail}")
    if out.kind == P.TIMEOUT:
        raise CheckError("timeout", f"{where}: {out.detail}")


def _fetch_certificate_tls13(connect: P.Connect, sni: str) -> list[bytes]:
    """TLS 1.3 encrypts the Certificate: complete one real handshake with Python's ssl (no verification)."""
    sock = connect()
    try:
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.minimum_version = ssl.TLSVersion.TLSv1_3
        with c.wrap_socket(sock, server_hostname=sni or None) as tls:
            chain_fn = getattr(tls._sslobj, "get_unverified_chain", None)   # private in 3.11/3.12, public in 3.13
            if chain_fn is not None:
                chain = chain_fn() or []
                ders = [x.public_bytes(ssl._ssl.ENCODING_DER) if hasattr(x, "public_bytes") else x for x in chain]
                if ders:
                    return ders
            leaf = tls.getpeercert(binary_form=True)
            return [leaf] if leaf else []
    except (OSError, ssl.SSLError, ValueError):
        return []
    finally:
        sock.close()


def run(ctx: CheckContext) -> list[Observation]:
    svc = ctx.service
    assert svc is not None
    where = f"{ctx.address}:{svc.port}"
    sni = _sni(ctx)
    timeout = min(float(ctx.options.get("tls_probe_timeout", PROBE_TIMEOUT)), ctx.remaining())
    parallel = 1 if ctx.safe_mode else max(1, int(ctx.options.get("tls_parallel", DEFAULT_PARALLEL)))

    proto = starttls_protocol(svc)
    upgraded = threading.Event()      # STARTTLS worked once: a later refusal is a broken server, not a fact

    def connect() -> socket.socket:
        sock = ctx.connect(timeout=min(timeout, ctx.remaining()))
        if not proto:
            return sock
        try:
            # its own deadline: the probe's timeout then bounds the ClientHello round trip that follows
            starttls.negotiate(sock, proto, time.monotonic() + min(timeout, ctx.remaining()))
            sock.settimeout(min(timeout, ctx.remaining()))   # the exchange left its own, shorter, timeout behind
        except starttls.NotOffered as e:
            sock.close()
            if upgraded.is_set():
                raise CheckError("protocol", f"{where}: STARTTLS offered on an earlier connection, "
                                             f"then refused: {e.reply}") from None
            raise
        except BaseException:
            sock.close()
            raise
        upgraded.set()
        return sock

    started = time.monotonic()
    try:
        result = enumerate_server(connect, timeout=timeout, sni=sni, parallel=parallel,
                                  on_first=lambda out: _first_check(out, where, proto))
    except starttls.NotOffered as e:
        # A fact, not an error: the service runs in cleartext only. Rules judge it (crypto.cleartext.no-starttls).
        return [ctx.observation("starttls", {"starttls": {"protocol": e.protocol, "offered": False,
                                                          "reply": e.reply}})]
    failure = result.failure()
    if failure is not None:
        reason = "timeout" if failure.kind == P.TIMEOUT else "protocol"
        label = next(k for k, c in result.chains.items() if c.stop is failure)
        raise CheckError(reason, f"{where} {label} probe: {failure.detail}")
    if all(c.stop and c.stop.kind == P.REFUSED and c.stop.detail in ("closed", "connection reset")
           and not c.accepted for c in result.chains.values()):
        if proto:
            raise CheckError("protocol", f"{where}: {proto} STARTTLS accepted, then every ClientHello was "
                                         "closed without a TLS answer")
        raise CheckNotApplicable(f"{where} closed the connection on every ClientHello without a TLS answer")

    versions = result.versions()
    data = {
        "versions": versions,
        "shangmi": {"rfc8998": result.names("TLSv1.3-SM"), "tlcp": result.names("TLCP"), "sm2_certificate": False},
        "certificate": None,
        "certificate_error": "",
        "refused": result.refused(),
        "offered": [v for v in VERSIONS if versions[v]],
        "accepted": sorted({s for names in versions.values() for s in names} | set(result.names("TLCP"))),
        "sni": sni,
        "probes": sum(c.probes for c in result.chains.values()),
    }
    if proto:
        data["starttls"] = {"protocol": proto, "offered": True}
    chain = result.certificate_chain()
    if not chain and result.names("TLSv1.3") and not ctx.safe_mode:
        chain = _fetch_certificate_tls13(connect, sni)
    if chain:
        extra_ca = str(ctx.options.get("tls_ca_file") or os.environ.get("TCMSCAN_TLS_CA_FILE", ""))
        names = [n for n in (sni, ctx.asset.name, ctx.address) if n]
        try:
            data["certificate"] = certinfo.analyse(chain, names=names, extra_ca=extra_ca)
            data["shangmi"]["sm2_certificate"] = data["certificate"]["sm2"]
        except ValueError as e:
            data["certificate_error"] = f"certificate not parseable: {e}"
    else:
        data["certificate_error"] = ("no certificate: only anonymous/ShangMi-only handshakes were accepted"
                                     if any(versions.values()) or data["shangmi"]["tlcp"] else
                                     "no certificate: no handshake was accepted")
    data["duration"] = round(time.monotonic() - started, 3)
    return [ctx.observation("versions", data)]


def summary(result: Enumeration) -> dict[str, list[str]]:
    """The public `versions` mapping alone (bench and peer tests use it)."""
    return result.versions()
