"""tls.scan against the lab's TLS endpoints through the real CLI: findings equal the ground truth in
lab/expected-findings.yaml (crypto.tls.* rules this check feeds; crypto.tls.no-hsts belongs to the HTTP check)."""

from __future__ import annotations

import os

import pytest
import yaml

from tests.helpers import expected, observations, scan, triples

TLS_HOSTS = ("his", "portal", "hardened", "sm-gw")
OURS = ("crypto.tls.legacy-protocol", "crypto.tls.weak-cipher", "crypto.tls.weak-key", "crypto.tls.sha1-signature",
        "crypto.tls.cert-expired", "crypto.tls.cert-expiring", "crypto.tls.self-signed", "crypto.tls.no-shangmi")


@pytest.fixture(scope="module")
def lab_scan(lab, tmp_path_factory):
    addrs = [h["address"] for h in lab["hosts"] if h["name"] in TLS_HOSTS]
    db = tmp_path_factory.mktemp("tls-lab") / "scan.db"
    topo = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "..", "lab", "topology.yaml")))
    os.environ["TCMSCAN_TLS_CA_FILE"] = topo["ca_file"]       # the lab CA: hardened's chain is trusted
    try:
        scan_id, found = scan(addrs, scope=[lab["subnet"]], db=db, checks=["tls"], inventory=lab["inventory"],
                              extra=["--ports", "443"])
    finally:
        del os.environ["TCMSCAN_TLS_CA_FILE"]
    return found, observations(db, scan_id)


@pytest.mark.lab
def test_lab_tls_findings_equal_ground_truth(lab, lab_scan) -> None:
    found, _obs = lab_scan
    got = {t for t in triples(found, lab) if t[1] in OURS}
    assert got == expected(OURS, TLS_HOSTS)


@pytest.mark.lab
def test_lab_tls_observations(lab, lab_host, lab_scan) -> None:
    _found, obs = lab_scan
    by_host = {o["address"]: o["data"] for o in obs if o["check_id"] == "tls.scan" and o["port"] == 443}
    his = by_host[lab_host("his")]
    assert {v: sorted(s) for v, s in his["versions"].items()} == {
        "SSLv2": [], "SSLv3": [], "TLSv1.2": [], "TLSv1.3": [],
        "TLSv1.0": sorted(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
                           "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
                           "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"]),
        "TLSv1.1": sorted(["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
                           "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
                           "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"])}
    assert (his["certificate"]["key_bits"], his["certificate"]["signature_algorithm"],
            his["certificate"]["self_signed"]) == (1024, "sha1WithRSAEncryption", True)
    modern = {"SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [],
              "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                          "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"],
              "TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]}
    for name in ("portal", "hardened"):
        assert {v: sorted(s) for v, s in by_host[lab_host(name)]["versions"].items()} == modern, name
    hardened = by_host[lab_host("hardened")]["certificate"]
    assert (hardened["chain_trusted"], hardened["hostname_match"], hardened["expired"]) == (True, True, False)
    portal = by_host[lab_host("portal")]["certificate"]
    assert (portal["not_after"], portal["chain_trusted"]) == ("2024-01-01T00:00:00Z", True)
    sm = by_host.get(lab_host("sm-gw"))
    assert sm is not None, "tls.scan did not run on sm-gw:443"
    assert sm["shangmi"] == {"rfc8998": ["TLS_SM4_GCM_SM3"], "tlcp": ["ECC_SM4_CBC_SM3"], "sm2_certificate": False}
