"""tls.scan through STARTTLS against real servers on loopback addresses of their own (127.55.0.x, high
ports): aiosmtpd (SMTP), vsftpd (FTP AUTH TLS), dovecot (IMAP, POP3), each with STARTTLS and without.
The CLI scan (nmap names the services) gives exact observations and exact findings; the SMTP answer is
also compared with sslyze's STARTTLS scan of the same server."""

from __future__ import annotations

import contextlib
import os

import pytest

from checks.tls.scan import applies, starttls_protocol
from scanner.core.models import Asset, Service
from tests.checks.starttls_support import (
    DOVECOT_VERSIONS,
    FTP_VERSIONS,
    SMTP_VERSIONS,
    dovecot,
    smtp_context,
    smtp_server,
    vsftpd,
)
from tests.checks.tls_support import make_pki, sslyze_versions
from tests.helpers import observations, scan

NET = "127.55.0"
MAIL_TLS, MAIL_PLAIN = f"{NET}.1", f"{NET}.2"
FTP_TLS, FTP_PLAIN = f"{NET}.3", f"{NET}.4"
DOVE_TLS, DOVE_PLAIN = f"{NET}.5", f"{NET}.6"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("starttls")
    with contextlib.ExitStack() as stack:
        dove = stack.enter_context(dovecot(tmp, DOVE_TLS, pki["good"]))
        dove_plain = stack.enter_context(dovecot(tmp, DOVE_PLAIN, None))
        yield {
            "smtp": (MAIL_TLS, stack.enter_context(smtp_server(MAIL_TLS, smtp_context(*pki["good"])))),
            "smtp-plain": (MAIL_PLAIN, stack.enter_context(smtp_server(MAIL_PLAIN, None))),
            "ftp": (FTP_TLS, stack.enter_context(vsftpd(tmp, FTP_TLS, pki["good"]))),
            "ftp-plain": (FTP_PLAIN, stack.enter_context(vsftpd(tmp, FTP_PLAIN, None))),
            "imap": (DOVE_TLS, dove["imap"]), "pop3": (DOVE_TLS, dove["pop3"]),
            "imap-plain": (DOVE_PLAIN, dove_plain["imap"]), "pop3-plain": (DOVE_PLAIN, dove_plain["pop3"]),
        }


@pytest.fixture(scope="module")
def cli_scan(servers, pki, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scan")
    inv = tmp / "inventory.yaml"
    # the mail relay faces the internet (a ShangMi gap is judged there); the rest sit in the server zone
    lines = ["assets:"] + [
        f"  - {{address: {a}, name: {n}, role: mail, class: server, zone: {z}, criticality: 3}}"
        for a, n, z in ((MAIL_TLS, "mail-tls", "internet"), (MAIL_PLAIN, "mail-plain", "server"),
                        (FTP_TLS, "ftp-tls", "server"), (FTP_PLAIN, "ftp-plain", "server"),
                        (DOVE_TLS, "dove-tls", "server"), (DOVE_PLAIN, "dove-plain", "server"))]
    inv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp / "scan.db"
    ports = sorted({p for _a, p in servers.values()})
    extra = [a for p in ports for a in ("--ports", str(p))] + ["--no-ping"]
    addrs = sorted({a for a, _p in servers.values()})
    os.environ["TCMSCAN_TLS_CA_FILE"] = str(pki["ca"][0])
    try:
        scan_id, found = scan(addrs, scope=[f"{NET}.0/24"], db=db, checks=["tls"], inventory=str(inv), extra=extra)
    finally:
        del os.environ["TCMSCAN_TLS_CA_FILE"]
    obs = {(o["address"], o["port"]): o for o in observations(db, scan_id) if o["check_id"] == "tls.scan"}
    return found, obs


def _sorted(versions: dict[str, list[str]]) -> dict[str, list[str]]:
    return {v: sorted(s) for v, s in versions.items()}


def test_versions_through_starttls_exact(cli_scan, servers) -> None:
    _found, obs = cli_scan
    for name, want, proto in (("smtp", SMTP_VERSIONS, "smtp"), ("ftp", FTP_VERSIONS, "ftp"),
                              ("imap", DOVECOT_VERSIONS, "imap"), ("pop3", DOVECOT_VERSIONS, "pop3")):
        o = obs[servers[name]]
        assert o["key"] == "versions", name
        assert list(o["data"]["versions"]) == ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
        assert _sorted(o["data"]["versions"]) == want, name
        assert o["data"]["starttls"] == {"protocol": proto, "offered": True}, name
        cert = o["data"]["certificate"]
        assert (cert["subject"], cert["chain_trusted"], cert["key_bits"]) == ("CN=tls-good.test", True, 2048), name


def test_no_starttls_is_an_observation_not_an_error(cli_scan, servers) -> None:
    _found, obs = cli_scan
    got = {name: (obs[servers[name]]["key"], obs[servers[name]]["data"])
           for name in ("smtp-plain", "ftp-plain", "imap-plain", "pop3-plain")}
    assert got["ftp-plain"] == ("starttls", {"starttls": {
        "protocol": "ftp", "offered": False, "reply": "AUTH TLS refused: 530 Please login with USER and PASS."}})
    assert got["smtp-plain"] == ("starttls", {"starttls": {
        "protocol": "smtp", "offered": False, "reply": "EHLO lists no STARTTLS: 8BITMIME HELP SIZE SMTPUTF8"}})
    imap = got["imap-plain"][1]["starttls"]
    assert (got["imap-plain"][0], imap["protocol"], imap["offered"]) == ("starttls", "imap", False)
    assert imap["reply"].startswith("CAPABILITY lists no STARTTLS: ") and "IMAP4REV1" in imap["reply"]
    assert got["pop3-plain"] == ("starttls", {"starttls": {
        "protocol": "pop3", "offered": False, "reply": "STLS refused: -ERR TLS support isn't enabled."}})


def test_findings_exact(cli_scan, servers) -> None:
    found, _obs = cli_scan
    got = {(f["address"], f["rule_id"], f["port"]) for f in found}
    s = servers
    assert got == {
        (*s["smtp"][:1], "crypto.tls.legacy-protocol", s["smtp"][1]),      # TLS 1.0/1.1 after STARTTLS
        (*s["smtp"][:1], "crypto.tls.no-shangmi", s["smtp"][1]),           # internet-facing relay
        (*s["smtp-plain"][:1], "crypto.cleartext.no-starttls", s["smtp-plain"][1]),
        (*s["ftp-plain"][:1], "crypto.cleartext.no-starttls", s["ftp-plain"][1]),
        (*s["imap-plain"][:1], "crypto.cleartext.no-starttls", s["imap-plain"][1]),
        (*s["pop3-plain"][:1], "crypto.cleartext.no-starttls", s["pop3-plain"][1]),
    }
    legacy = next(f for f in found if f["rule_id"] == "crypto.tls.legacy-protocol")
    assert legacy["evidence"]["offered"] == ["TLSv1.0", "TLSv1.1"]
    pop3 = next(f for f in found if f["rule_id"] == "crypto.cleartext.no-starttls" and f["port"] == s["pop3-plain"][1])
    assert (pop3["severity"], pop3["evidence"]) == ("medium", {"protocol": "pop3",
                                                               "reply": "STLS refused: -ERR TLS support isn't enabled."})


def test_smtp_equals_sslyze_starttls(servers) -> None:
    """sslyze's own STARTTLS scan of the same aiosmtpd server: the same suites per version."""
    address, port = servers["smtp"]
    theirs = sslyze_versions(address, port, starttls="SMTP", sni="mail.test")
    mine = _attempt(address, port, "smtp")
    assert mine.status == "completed", mine.detail
    assert _sorted(mine.observations[0].data["versions"]) == theirs == SMTP_VERSIONS


def _attempt(address: str, port: int, name: str, **kw):
    from scanner.core.models import AttemptSpec
    from scanner.engine.runner import execute_attempt
    from scanner.sdk.context import RunEnv

    asset = Asset(address=address, name=name, cls="server", zone="server", services=[Service(port=port, name=name)])
    spec = AttemptSpec(scan_id="t", check_id="tls.scan", asset=asset.to_dict(), port=port, timeout=30.0,
                       safe_mode=kw.get("safe_mode", False), options=kw.get("options", {}))
    return execute_attempt(spec, RunEnv(scope=[f"{NET}.0/24"]))


def test_safe_mode_paces_the_starttls_exchange_and_agrees(servers) -> None:
    address, port = servers["pop3"]
    fast = _attempt(address, port, "pop3")
    safe = _attempt(address, port, "pop3", safe_mode=True)
    assert fast.status == safe.status == "completed", (fast.detail, safe.detail)
    assert fast.observations[0].data["versions"] == safe.observations[0].data["versions"]
    # each probe: connect + STLS + ClientHello, every one paced at 10/s: at least 0.3 s per probe
    assert safe.duration >= 0.1 * 3 * safe.observations[0].data["probes"] - 0.5


@pytest.mark.parametrize(("name", "port", "tunnel", "want", "applies_"), [
    ("smtp", 2525, "", "smtp", True),
    ("submission", 587, "", "smtp", True),
    ("ftp", 21, "", "ftp", True),
    ("imap", 143, "", "imap", True),
    ("pop3", 110, "", "pop3", True),
    ("", 25, "", "smtp", True),              # unnamed: the port decides
    ("unknown", 110, "", "pop3", True),
    ("http", 25, "", "", False),             # something else on 25: not ours
    ("smtp", 465, "ssl", "", True),          # implicit TLS: ClientHello at once
    ("imap", 993, "ssl", "", True),
    ("https", 443, "", "", True),
    ("", 443, "", "", True),
])
def test_protocol_choice(name, port, tunnel, want, applies_) -> None:
    svc = Service(port=port, name=name, tunnel=tunnel)
    asset = Asset(address="127.55.0.9", services=[svc])
    assert (starttls_protocol(svc), applies(asset, svc)) == (want, applies_)


@pytest.mark.lab
def test_lab_pump_ftp_offers_no_starttls(lab, lab_host, tmp_path) -> None:
    """The lab pump's vsftpd (ssl_enable=NO) answers AUTH TLS with 530: a fact, judged by no-starttls.
    The pump is fragile: the scan runs in safe mode and the upgrade attempt is one paced connection."""
    pump = lab_host("pump")
    scan_id, found = scan([pump], scope=[lab["subnet"]], db=tmp_path / "scan.db", checks=["tls"],
                          inventory=lab["inventory"])
    obs = [(o["port"], o["key"], o["data"]) for o in observations(tmp_path / "scan.db", scan_id)
           if o["check_id"] == "tls.scan"]
    assert obs == [(21, "starttls", {"starttls": {"protocol": "ftp", "offered": False,
                                                  "reply": "AUTH TLS refused: 530 Please login with USER and PASS."}})]
    assert {(f["address"], f["rule_id"], f["port"]) for f in found} == {(pump, "crypto.cleartext.no-starttls", 21)}
