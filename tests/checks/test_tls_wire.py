"""tls.scan's wire format: our ClientHello as a real TLS parser reads it, and parsers that never crash on
garbage (hypothesis)."""

from __future__ import annotations

import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.tls import _certinfo as certinfo
from checks.tls import _wire as wire
from checks.tls._suites import tables
from tests.checks.tls_support import load_sm_responder, make_pki

PARSERS = [
    lambda b: wire.parse_server_hello(b),
    lambda b: wire.parse_certificate_list(b),
    lambda b: wire.parse_certificate_list(b, tls13=True),
    lambda b: wire.parse_sslv2_server_hello(b),
    lambda b: wire.parse_record_header(b[:5]),
    lambda b: wire.parse_alert(b),
    lambda b: wire.sslv2_record_length(b[:2]),
]


@settings(max_examples=400, deadline=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(0, len(PARSERS) - 1))
def test_parsers_raise_only_protocol_error_on_garbage(data: bytes, which: int) -> None:
    try:
        PARSERS[which](data)
    except wire.ProtocolError:
        pass


@settings(max_examples=200, deadline=200)
@given(st.binary(max_size=2000))
def test_split_handshakes_never_loses_or_invents_bytes(data: bytes) -> None:
    msgs, tail = wire.split_handshakes(data)
    rebuilt = b"".join(bytes([t]) + len(b).to_bytes(3, "big") + b for t, b in msgs) + tail
    assert rebuilt == data


@settings(max_examples=200, deadline=500)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4))
def test_certinfo_on_garbage_der_raises_value_error_only(ders: list[bytes]) -> None:
    try:
        certinfo.analyse(ders, names=["x"])
    except ValueError:
        pass


def _server_hello(version: int, suite: int, exts: bytes = b"") -> bytes:
    body = struct.pack("!H", version) + b"\x11" * 32 + b"\x00" + struct.pack("!HB", suite, 0)
    if exts:
        body += struct.pack("!H", len(exts)) + exts
    return body


def test_server_hello_tls13_and_hello_retry() -> None:
    sv = struct.pack("!HHH", wire.EXT_SUPPORTED_VERSIONS, 2, 0x0304)
    sh = wire.parse_server_hello(_server_hello(0x0303, 0x1302, sv))
    assert (sh.version, sh.legacy_version, sh.cipher_suite, sh.hello_retry) == (0x0304, 0x0303, 0x1302, False)
    hrr = bytearray(_server_hello(0x0303, 0x1301, sv))
    hrr[2:34] = wire.HRR_RANDOM
    assert wire.parse_server_hello(bytes(hrr)).hello_retry is True
    with pytest.raises(wire.ProtocolError, match="duplicate"):
        wire.parse_server_hello(_server_hello(0x0303, 0x1301, sv + sv))


def test_our_client_hellos_read_back_by_an_independent_parser() -> None:
    """The lab responder's ClientHello reader (written separately) finds the fields we meant; that real
    OpenSSL servers accept our hellos is shown by the loopback scans in test_tls_scan.py."""
    sm = load_sm_responder()
    t = tables()
    ks = wire.make_key_shares()
    for version, suites in ((0x0303, t.tls12), (0x0301, t.tls12), (0x0300, t.tls12), (0x0304, t.tls13),
                            (0x0101, tuple(t.tlcp))):
        raw = wire.client_hello(version, suites, sni="his.example", key_shares=ks)
        ctype, rec_version, length = wire.parse_record_header(raw[:5])
        assert ctype == wire.HANDSHAKE and length == len(raw) - 5
        hello = sm.ClientHello(rec_version, raw[9:])
        assert hello.suites == list(suites)
        assert hello.version == (0x0303 if version == 0x0304 else version)
        assert (hello.supported_versions() == [0x0304]) == (version == 0x0304)
        assert hello.first_key_share() == ((wire.X25519, 32) if version == 0x0304 else None)


def test_shangmi_hellos_get_shangmi_server_hellos_from_the_lab_responder() -> None:
    """The lab responder (a named fake ShangMi server) selects TLS_SM4_GCM_SM3 / ECC_SM4_CBC_SM3 from our hellos."""
    sm = load_sm_responder()
    t = tables()
    answer = sm.respond(wire.client_hello(0x0304, t.rfc8998, shangmi=True))
    msgs, _ = wire.split_handshakes(answer[5:])
    sh = wire.parse_server_hello(msgs[0][1])
    assert (sh.version, sh.cipher_suite) == (0x0304, 0x00C6)
    key_share = sh.extensions[wire.EXT_KEY_SHARE]
    assert struct.unpack("!H", key_share[:2])[0] == wire.CURVE_SM2
    answer = sm.respond(wire.client_hello(0x0101, tuple(t.tlcp)))
    assert wire.parse_record_header(answer[:5])[1] == 0x0101
    sh = wire.parse_server_hello(wire.split_handshakes(answer[5:])[0][0][1])
    assert (sh.version, sh.cipher_suite) == (0x0101, 0xE013)


def test_sslv2_hello_layout() -> None:
    raw = wire.sslv2_client_hello(list(tables().sslv2))
    hlen, blen = wire.sslv2_record_length(raw[:2])
    assert (hlen, blen) == (2, len(raw) - 2)
    assert raw[2] == 1 and struct.unpack("!H", raw[3:5])[0] == 0x0002
    assert struct.unpack("!H", raw[5:7])[0] == 3 * len(tables().sslv2)


def test_certificate_facts(tmp_path) -> None:
    pki = make_pki(tmp_path)

    def der(name: str) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        return x509.load_pem_x509_certificate(pki[name][0].read_bytes()).public_bytes(serialization.Encoding.DER)

    legacy = certinfo.analyse([der("legacy")], names=["tls-legacy.test"])
    assert {k: legacy[k] for k in ("key_type", "key_bits", "signature_algorithm", "signature_hash", "self_signed",
                                   "chain_trusted", "hostname_match", "sm2", "expired")} == {
        "key_type": "RSA", "key_bits": 1024, "signature_algorithm": "sha1WithRSAEncryption", "signature_hash": "sha1",
        "self_signed": True, "chain_trusted": False, "hostname_match": True, "sm2": False, "expired": False}
    assert 9 <= legacy["days_to_expiry"] <= 10
    expired = certinfo.analyse([der("expired")], names=["127.0.0.1"], extra_ca=str(pki["ca"][0]))
    assert (expired["expired"], expired["not_after"], expired["self_signed"], expired["chain_trusted"],
            expired["hostname_match"]) == (True, "2024-01-01T00:00:00Z", False, True, False)
    good = certinfo.analyse([der("good")], names=["127.0.0.1"])
    assert (good["chain_trusted"], good["chain_error"], good["hostname_match"]) == (
        False, "issuer not found: CN=tcmscan test CA", True)


def test_sm2_certificate_recognised(tmp_path) -> None:
    """An SM2/SM3 certificate made by the local OpenSSL 3 (which implements SM2): key type and sm2 flag."""
    key, crt = tmp_path / "sm2.key", tmp_path / "sm2.crt"
    r = subprocess.run(["openssl", "ecparam", "-name", "SM2", "-genkey", "-noout", "-out", str(key)], capture_output=True)
    assert r.returncode == 0, f"this OpenSSL cannot make an SM2 key (Debian 12's can): {r.stderr[:200]!r}"
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key), "-sm3", "-days", "30", "-subj", "/CN=sm2.test",
                    "-out", str(crt), "-outform", "DER"], check=True, capture_output=True)
    facts = certinfo.analyse([crt.read_bytes()], names=["sm2.test"])
    assert (facts["key_type"], facts["sm2"], facts["signature_algorithm"], facts["hostname_match"]) == (
        "SM2", True, "SM2-with-SM3", True)
