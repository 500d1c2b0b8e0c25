"""tls.scan end to end on loopback: real `openssl s_server` daemons (and the lab's ShangMi responder) scanned
through the real `tcmscan scan` CLI into a real SQLite file; exact observations and exact findings."""

from __future__ import annotations

import contextlib
import os

import pytest

from tests.checks.tls_support import CONFIGS, LOOP, attempt, make_pki, s_server, sm_responder
from tests.helpers import observations, scan

VERSIONS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki):
    with contextlib.ExitStack() as stack:
        ports = {name: stack.enter_context(s_server(pki, name)) for name in ("legacy", "expired", "tls13only")}
        ports["sm"] = stack.enter_context(sm_responder())
        yield ports


@pytest.fixture(scope="module")
def cli_scan(servers, pki, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scan")
    inv = tmp / "inventory.yaml"
    inv.write_text(f"assets:\n  - {{address: {LOOP}, name: tls-test, role: portal, class: server, zone: internet,"
                   " criticality: 3}\n", encoding="utf-8")
    db = tmp / "scan.db"
    extra = [a for p in servers.values() for a in ("--ports", str(p))] + ["--no-ping"]
    os.environ["TCMSCAN_TLS_CA_FILE"] = str(pki["ca"][0])     # the test CA is an extra trust anchor
    try:
        scan_id, found = scan([LOOP], scope=[f"{LOOP}/32"], db=db, checks=["tls"], inventory=str(inv), extra=extra)
    finally:
        del os.environ["TCMSCAN_TLS_CA_FILE"]
    obs = {o["port"]: o["data"] for o in observations(db, scan_id) if o["check_id"] == "tls.scan"}
    return found, obs


def test_versions_exact_per_server(cli_scan, servers) -> None:
    _found, obs = cli_scan
    for name in ("legacy", "expired", "tls13only"):
        got = obs[servers[name]]["versions"]
        assert list(got) == list(VERSIONS)        # the public contract: exactly these keys, in this order
        assert {v: sorted(s) for v, s in got.items()} == {v: sorted(CONFIGS[name][2][v]) for v in VERSIONS}, name


def test_shangmi_responder_observed(cli_scan, servers) -> None:
    _found, obs = cli_scan
    sm = obs.get(servers["sm"])
    if sm is None:
        # nmap does not call the responder's port TLS (it refuses nmap's probes): scan it through the runner
        res = attempt(servers["sm"])
        assert res.status == "completed", res.detail
        sm = res.observations[0].data
    assert sm["versions"] == {"SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [], "TLSv1.2": [],
                              "TLSv1.3": ["TLS_SM4_GCM_SM3"]}
    assert sm["shangmi"] == {"rfc8998": ["TLS_SM4_GCM_SM3"], "tlcp": ["ECC_SM4_CBC_SM3"], "sm2_certificate": False}
    assert sm["certificate"] is None and sm["certificate_error"].startswith("no certificate")


def test_certificates(cli_scan, servers) -> None:
    _found, obs = cli_scan
    legacy = obs[servers["legacy"]]["certificate"]
    assert (legacy["key_bits"], legacy["signature_algorithm"], legacy["self_signed"], legacy["subject"]) == (
        1024, "sha1WithRSAEncryption", True, "CN=tls-legacy.test")
    expired = obs[servers["expired"]]["certificate"]
    assert (expired["not_after"], expired["expired"], expired["chain_trusted"], expired["self_signed"]) == (
        "2024-01-01T00:00:00Z", True, True, False)
    # TLS 1.3 only: the certificate is encrypted in our probes, fetched by one real handshake instead
    good = obs[servers["tls13only"]]["certificate"]
    assert (good["subject"], good["chain_trusted"], good["hostname_match"], good["key_bits"]) == (
        "CN=tls-good.test", True, True, 2048)


def test_findings_exact(cli_scan, servers) -> None:
    found, _obs = cli_scan
    got = {(f["rule_id"], f["port"]) for f in found if f["rule_id"].startswith("crypto.tls.")}
    legacy, expired, only13 = servers["legacy"], servers["expired"], servers["tls13only"]
    want = {
        ("crypto.tls.legacy-protocol", legacy), ("crypto.tls.weak-cipher", legacy), ("crypto.tls.weak-key", legacy),
        ("crypto.tls.sha1-signature", legacy), ("crypto.tls.cert-expiring", legacy),
        ("crypto.tls.self-signed", legacy), ("crypto.tls.no-shangmi", legacy),
        ("crypto.tls.cert-expired", expired), ("crypto.tls.no-shangmi", expired),
        ("crypto.tls.no-shangmi", only13),
    }
    assert got == want
    weak = next(f for f in found if f["rule_id"] == "crypto.tls.weak-cipher")
    assert weak["evidence"] == {"suites": ["TLS_ECDH_anon_WITH_AES_128_CBC_SHA"]}
    legacy_f = next(f for f in found if f["rule_id"] == "crypto.tls.legacy-protocol")
    assert legacy_f["evidence"]["offered"] == ["TLSv1.0", "TLSv1.1"]


def test_safe_mode_is_sequential_and_gives_the_same_answer(servers) -> None:
    fast = attempt(servers["expired"])
    safe = attempt(servers["expired"], safe_mode=True)
    assert fast.status == safe.status == "completed"
    assert fast.observations[0].data["versions"] == safe.observations[0].data["versions"]
