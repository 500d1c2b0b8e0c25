"""smb.negotiate: NEGOTIATE answers and the direct-TCP framing from a peer sending anything: a NegotiateAnswer or
WireError, never anything else."""

from __future__ import annotations

import socket
import struct
import time

from hypothesis import given
from hypothesis import strategies as st

from checks.smb._wire import (
    SMB1_DIALECT,
    SMB2_DIALECTS,
    NegotiateAnswer,
    WireError,
    directory_entries,
    parse_negotiate,
    read_message,
)
from tests.checks.smb_answers import framed, smb1_answer, smb2_answer
from tests.fuzz import bounded, fuzz, mutated

ANSWERS = st.one_of(
    st.builds(smb2_answer, st.sampled_from([*SMB2_DIALECTS.values(), 0x02FF, 0xFFFF]), st.integers(0, 3),
              st.sampled_from([0, 0xC00000BB]), st.integers(0, 2**64 - 1)),
    st.builds(smb1_answer, st.sampled_from([0, 1, 0xFFFF]), st.integers(0, 15), st.integers(0, 2**64 - 1)))
OFFERS = st.sampled_from([SMB1_DIALECT, *SMB2_DIALECTS])


@fuzz
@given(st.one_of(st.binary(max_size=400), mutated(ANSWERS)), OFFERS)
def test_negotiate_answer(message: bytes, offered: str) -> None:
    a = bounded(parse_negotiate, message, offered, allowed=(WireError,))
    assert a is None or isinstance(a, NegotiateAnswer)
    if a is not None and a.accepted:
        assert a.dialect == offered and a.signing_required in (True, False)
        assert a.server_time is None or 1980 <= a.server_time.year <= 9000


@fuzz
@given(st.one_of(st.binary(max_size=3000), mutated(ANSWERS.map(framed))))
def test_framing_over_a_real_socket(raw: bytes) -> None:
    """Whatever arrives before EOF: one message or WireError; never a hang (deadline 1 s)."""
    a, b = socket.socketpair()
    try:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        m = bounded(read_message, b, time.monotonic() + 1.0, allowed=(WireError,))
        assert m is None or len(m) == int.from_bytes(raw[1:4], "big")
    finally:
        a.close()
        b.close()


def _entry(name: str, folder: bool, last: bool) -> bytes:
    raw = name.encode("utf-16-le")
    size = (68 + len(raw) + 7) // 8 * 8
    body = (struct.pack("<II", 0 if last else size, 0) + b"\x00" * 48 + struct.pack("<III", 0x10 if folder else 0x20,
            len(raw), 0) + raw)
    return body + b"\x00" * (size - len(body) if not last else 0)


LISTINGS = st.lists(st.tuples(st.text(min_size=1, max_size=20), st.booleans()), min_size=1, max_size=8).map(
    lambda xs: b"".join(_entry(n, d, i == len(xs) - 1) for i, (n, d) in enumerate(xs)))


def test_listing_roundtrip() -> None:
    raw = b"".join(_entry(n, d, i == 2) for i, (n, d) in enumerate([(".", True), ("a.csv", False), ("archive", True)]))
    assert directory_entries(raw) == [(".", True), ("a.csv", False), ("archive", True)]


@fuzz
@given(st.one_of(st.binary(max_size=600), mutated(LISTINGS)))
def test_directory_listing(raw: bytes) -> None:
    got = bounded(directory_entries, raw, allowed=(WireError,))
    assert got is None or all(isinstance(n, str) and isinstance(d, bool) for n, d in got)
