"""tls.scan's LDAP StartTLS dialogue (checks/tls/_starttls.py): the ExtendedResponse parser from a peer sending
anything: a value or BerError, never anything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from checks.tls._starttls import BerError, ldap_message_length, parse_ldap_extended_response
from tests.fuzz import bounded, fuzz, mutated


def _response(msgid: int, code: int, text: bytes) -> bytes:
    op = b"\x0a\x01" + bytes([code]) + b"\x04\x00" + b"\x04" + bytes([len(text)]) + text
    body = b"\x02\x01" + bytes([msgid]) + b"\x78" + bytes([len(op)]) + op
    return b"\x30" + bytes([len(body)]) + body


RESPONSES = st.builds(_response, st.integers(0, 127), st.sampled_from([0, 2, 52, 53]),
                      st.binary(max_size=60))


def test_slapd_refusal_parses() -> None:
    msg = _response(1, 2, b"unsupported extended operation")
    assert ldap_message_length(msg[:6]) == len(msg)
    assert parse_ldap_extended_response(msg) == (1, 2, "unsupported extended operation")


@fuzz
@given(st.one_of(st.binary(max_size=300), mutated(RESPONSES)))
def test_extended_response(message: bytes) -> None:
    got = bounded(parse_ldap_extended_response, message, allowed=(BerError,))
    assert got is None or (0 <= got[1] <= 255 and isinstance(got[2], str))
    n = bounded(ldap_message_length, message[:6], allowed=(BerError,))
    assert n is None or n >= 2
