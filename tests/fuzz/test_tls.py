"""tls.scan: the record/handshake parsers (ProtocolError only), a whole probe against a peer sending anything (an
Outcome, never an exception), the certificate analysis (ValueError only), the STARTTLS dialogues (NotOffered or
CheckError only)."""

from __future__ import annotations

import datetime as dt
import struct
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import example, given
from hypothesis import strategies as st

from checks.tls import _certinfo as certinfo
from checks.tls import _probe as probe
from checks.tls import _starttls as starttls
from checks.tls import _wire as wire
from scanner.sdk.errors import CheckError
from tests.fuzz import bounded, fuzz, mutated, peer

OFFERED = (0xC02F, 0xC030, 0x009C, 0x002F)


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("fuzz.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


CERT = _certificate()
# The version field says 3 (an X.509 "v4"): cryptography raises InvalidVersion, which is no ValueError.
V4_CERT = CERT.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03", 1)


def _u16(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _u24(b: bytes) -> bytes:
    return len(b).to_bytes(3, "big") + b


@st.composite
def server_hello_body(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from((0x0300, 0x0301, 0x0302, 0x0303, 0x0101)))
    sid = draw(st.binary(max_size=32))
    exts = b"".join(struct.pack("!H", t) + _u16(v) for t, v in draw(
        st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=4)).items())
    if draw(st.booleans()):
        exts += struct.pack("!H", wire.EXT_SUPPORTED_VERSIONS) + _u16(b"\x03\x04")
    return (struct.pack("!H", version) + draw(st.binary(min_size=32, max_size=32)) + bytes([len(sid)]) + sid
            + struct.pack("!HB", draw(st.sampled_from(OFFERED)), 0) + (_u16(exts) if exts else b""))


def certificate_body(tls13: bool) -> bytes:
    entry = _u24(CERT) + (_u16(b"") if tls13 else b"")
    return (b"\x00" if tls13 else b"") + _u24(entry + entry)


def flight(hello: bytes, certs: bytes) -> bytes:
    hs = bytes([wire.SERVER_HELLO]) + _u24(hello) + bytes([wire.CERTIFICATE]) + _u24(certs)
    return wire.record(wire.HANDSHAKE, 0x0303, hs[:100]) + wire.record(wire.HANDSHAKE, 0x0303, hs[100:])


PARSERS = {
    "server_hello": wire.parse_server_hello,
    "certificate_list": wire.parse_certificate_list,
    "certificate_list_13": lambda b: wire.parse_certificate_list(b, tls13=True),
    "sslv2_server_hello": wire.parse_sslv2_server_hello,
    "record_header": lambda b: wire.parse_record_header(b[:5]),
    "alert": wire.parse_alert,
    "sslv2_record_length": lambda b: wire.sslv2_record_length(b[:2]),
    "split_handshakes": wire.split_handshakes,
}


@fuzz
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=3000))
def test_wire_parsers_on_arbitrary_bytes(which: str, data: bytes) -> None:
    bounded(PARSERS[which], data, allowed=(wire.ProtocolError,))


@fuzz
@given(mutated(server_hello_body()))
def test_server_hello_mutated(data: bytes) -> None:
    sh = bounded(wire.parse_server_hello, data, allowed=(wire.ProtocolError,))
    assert sh is None or isinstance(sh.cipher_suite, int)


@fuzz
@given(st.booleans(), st.data())
def test_certificate_list_mutated(tls13: bool, data: st.DataObject) -> None:
    body = data.draw(mutated(st.just(certificate_body(tls13))))
    certs = bounded(wire.parse_certificate_list, body, tls13, allowed=(wire.ProtocolError,))
    assert certs is None or all(isinstance(c, bytes) and c for c in certs)


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(st.builds(flight, server_hello_body(), st.just(certificate_body(
    False)))), mutated(st.just(b"\x80\x2e\x04\x00\x02" + struct.pack("!HHH", 0, 3, 16) + b"\x01\x00\x80" + b"\x00" * 16))))
def test_a_probe_against_any_peer_is_an_outcome(data: bytes) -> None:
    for run in (lambda s: probe.probe_tls(lambda: s, 0x0303, OFFERED, timeout=2.0, want_certificate=True),
                lambda s: probe.probe_sslv2(lambda: s, [0x010080, 0x020080], timeout=2.0)):
        with peer(data) as sock:
            outcome = bounded(run, sock)
        assert outcome.kind in (probe.ACCEPTED, probe.REFUSED, probe.NOT_TLS, probe.TIMEOUT, probe.PROTOCOL)


@fuzz
@given(st.lists(st.one_of(st.binary(max_size=400), mutated(st.just(CERT), max_edits=3)), min_size=1, max_size=3))
@example([V4_CERT])
@example([CERT, V4_CERT])
def test_certificate_analysis_raises_value_error_only(ders: list[bytes]) -> None:
    facts = bounded(certinfo.analyse, ders, names=["fuzz.test"], allowed=(ValueError,))
    assert facts is None or isinstance(facts["subject"], str)


REPLIES = {
    "smtp": b"220 mx ESMTP\r\n250-mx\r\n250-SIZE 10\r\n250 STARTTLS\r\n220 go ahead\r\n",
    "ftp": b"220 ftp ready\r\n234 AUTH TLS ok\r\n",
    "imap": b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\na2 OK begin TLS\r\n",
    "pop3": b"+OK ready\r\n+OK begin TLS\r\n",
}


@fuzz
@given(st.sampled_from(sorted(REPLIES)), st.data())
def test_starttls_dialogue_on_any_reply(protocol: str, data: st.DataObject) -> None:
    sent = data.draw(st.one_of(st.binary(max_size=2000), mutated(st.just(REPLIES[protocol]))))
    with peer(sent) as sock:
        bounded(starttls.negotiate, sock, protocol, time.monotonic() + 2.0,
                allowed=(starttls.NotOffered, CheckError))
