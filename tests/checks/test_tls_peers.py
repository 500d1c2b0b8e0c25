"""Proof of correctness against a peer: our `versions` equal sslyze's accepted suites per version, on loopback
`openssl s_server` daemons and (marked lab) on every TLS endpoint of the lab. sslyze (PyPI) is a test
dependency. Every known difference is named here with its explanation; anything else fails.

Known differences, by construction:
- ShangMi: sslyze does not test RFC 8998 suites (TLS_SM4_GCM_SM3 / TLS_SM4_CCM_SM3) or TLCP at all. Our
  TLSv1.3 list includes accepted RFC 8998 suites, so they are removed before comparing; against the lab's
  ShangMi-only responder sslyze cannot even connect ("could not find a TLS version and cipher suite").
- sslyze tests only the suites its bundled OpenSSL builds know (nassl: 1.0.2 for SSLv2/SSLv3, 1.1.1 for
  the rest); we offer the whole IANA registry. On a server that accepts nothing outside sslyze's list the
  answers must be equal.
- TLS_DH_anon_WITH_CAMELLIA_{128,256}_CBC_SHA256 (ADH-CAMELLIA*-SHA256): sslyze lists them as candidates but
  reports them rejected by an OpenSSL 3 server that accepts them -- a false negative of sslyze's client
  (nassl's OpenSSL 1.1.1 fails that handshake). `openssl s_client` (OpenSSL 3) completes the handshake with
  them; the test below proves it each time it excuses the difference.
"""

from __future__ import annotations

import socket
import subprocess

import pytest
import sslyze  # noqa: F401 -- the peer; the [test] extra installs it, so a missing sslyze is an error, not a skip

from checks.tls._enumerate import enumerate_server
from tests.checks.tls_support import LOOP, make_pki, s_server, sslyze_versions

SHANGMI = {"TLS_SM4_GCM_SM3", "TLS_SM4_CCM_SM3"}
SSLYZE_FALSE_NEGATIVES = {  # name -> OpenSSL name to prove acceptance with s_client
    "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256": "ADH-CAMELLIA128-SHA256",
    "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256": "ADH-CAMELLIA256-SHA256",
}


def ours(host: str, port: int) -> dict[str, list[str]]:
    r = enumerate_server(lambda: socket.create_connection((host, port), timeout=5), timeout=5)
    return r.versions()


def s_client_accepts(host: str, port: int, openssl_name: str) -> bool:
    p = subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2", "-cipher",
                        f"{openssl_name}:@SECLEVEL=0"], input=b"", capture_output=True, timeout=10)
    return f"Cipher is {openssl_name}".encode() in p.stdout


def compare(host: str, port: int) -> None:
    mine = ours(host, port)
    theirs = sslyze_versions(host, port)
    assert isinstance(theirs, dict), f"sslyze could not scan {host}:{port}: {theirs}"
    for version, names in mine.items():
        got = set(names) - SHANGMI
        want = set(theirs[version])
        extra = got - want
        for name in sorted(extra & set(SSLYZE_FALSE_NEGATIVES)):
            assert version == "TLSv1.2" and s_client_accepts(host, port, SSLYZE_FALSE_NEGATIVES[name]), name
            extra.discard(name)
        assert (sorted(extra), sorted(want - got)) == ([], []), f"{host}:{port} {version}: ours-only, sslyze-only"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("config", ["legacy", "expired", "tls13only", "all"])
def test_equal_to_sslyze_on_loopback(pki, config) -> None:
    with s_server(pki, config) as port:
        compare(LOOP, port)


@pytest.mark.lab
@pytest.mark.parametrize("name", ["his", "portal", "hardened"])
def test_equal_to_sslyze_on_lab(lab, lab_host, name) -> None:
    compare(lab_host(name), 443)


@pytest.mark.lab
def test_lab_shangmi_gateway_is_beyond_sslyze(lab, lab_host) -> None:
    """sm-gw accepts only ShangMi handshakes: sslyze cannot connect; we see RFC 8998 and TLCP."""
    host = lab_host("sm-gw")
    theirs = sslyze_versions(host, 443)
    assert isinstance(theirs, str) and "could not find a TLS version and cipher suite" in theirs
    r = enumerate_server(lambda: socket.create_connection((host, 443), timeout=5), timeout=5)
    assert r.versions() == {"SSLv2": [], "SSLv3": [], "TLSv1.0": [], "TLSv1.1": [], "TLSv1.2": [],
                            "TLSv1.3": ["TLS_SM4_GCM_SM3"]}
    assert r.names("TLCP") == ["ECC_SM4_CBC_SM3"]
